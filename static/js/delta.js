// Quill-style text deltas over JavaScript strings (UTF-16 code units), as in
// docs/protocol.md: a delta is an array of {retain: n}, {insert: "s"}, {delete: n}
// that applies to a whole text from its start; text past the last op is kept.
// Pure functions, no DOM. Deltas produced here are canonical: no empty ops, adjacent
// ops of one kind merged, an insert always before a delete at the same place, and no
// trailing retain.

const isHigh = (c) => c >= 0xd800 && c <= 0xdbff;
const isLow = (c) => c >= 0xdc00 && c <= 0xdfff;

/** True if position i of s falls between the two halves of a surrogate pair. */
export function splitsPair(s, i) {
  return i > 0 && i < s.length && isHigh(s.charCodeAt(i - 1)) && isLow(s.charCodeAt(i));
}

/** True if s contains a surrogate code unit that is not part of a pair. */
export function hasLoneSurrogate(s) {
  return /[\ud800-\udbff](?![\udc00-\udfff])|(?:^|[^\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

function opLength(op) {
  if (op.insert !== undefined) return op.insert.length;
  return op.retain !== undefined ? op.retain : op.delete;
}

function opType(op) {
  if (op.insert !== undefined) return "insert";
  return op.delete !== undefined ? "delete" : "retain";
}

/** Appends op to ops (in place), keeping the delta canonical. */
function push(ops, op) {
  const type = opType(op);
  if (opLength(op) === 0) return ops;
  let last = ops[ops.length - 1];
  if (type === "insert" && last && last.delete !== undefined) {
    // Canonical order: insert before delete. Slip the insert in front of the delete.
    const del = ops.pop();
    push(ops, op);
    ops.push(del);
    return ops;
  }
  if (last && opType(last) === type) {
    if (type === "insert") last.insert += op.insert;
    else if (type === "delete") last.delete += op.delete;
    else last.retain += op.retain;
    return ops;
  }
  ops.push(type === "insert" ? { insert: op.insert } : type === "delete" ? { delete: op.delete } : { retain: op.retain });
  return ops;
}

function chop(ops) {
  const last = ops[ops.length - 1];
  if (last && last.retain !== undefined) ops.pop();
  return ops;
}

/** Canonical copy of a delta; empty ops are dropped, malformed ones throw. */
export function normalize(delta) {
  const out = [];
  for (const op of delta) {
    if (op && (op.retain === 0 || op.delete === 0 || op.insert === "")) continue;
    checkOp(op);
    push(out, op);
  }
  return chop(out);
}

function checkOp(op) {
  if (op === null || typeof op !== "object") throw new Error("malformed op");
  const keys = Object.keys(op);
  if (keys.length !== 1) throw new Error("malformed op");
  if (op.insert !== undefined) {
    if (typeof op.insert !== "string" || op.insert === "") throw new Error("bad insert");
    if (op.insert.includes("\r")) throw new Error("CR in insert");
    if (hasLoneSurrogate(op.insert)) throw new Error("lone surrogate in insert");
  } else {
    const n = op.retain !== undefined ? op.retain : op.delete;
    if (!Number.isInteger(n) || n <= 0) throw new Error("bad op length");
  }
}

/** True if the delta changes nothing. */
export function isNoop(delta) {
  return delta.every((op) => op.retain !== undefined);
}

/**
 * apply(text, delta): the text the delta turns `text` into. Throws if the delta is
 * malformed, runs past the end of the text, or cuts a surrogate pair.
 */
export function apply(text, delta) {
  const parts = [];
  let pos = 0;
  for (const op of delta) {
    checkOp(op);
    if (op.insert !== undefined) {
      parts.push(op.insert);
      continue;
    }
    const n = opLength(op);
    if (pos + n > text.length) throw new Error("delta runs past the end of the text");
    if (op.retain !== undefined) parts.push(text.slice(pos, pos + n));
    pos += n;
    if (splitsPair(text, pos)) throw new Error("delta splits a surrogate pair");
  }
  parts.push(text.slice(pos));
  return parts.join("");
}

// Walks a delta op by op, handing out pieces of at most a given length. Past the end
// it hands out retains (a delta keeps the rest of the text).
class Iter {
  constructor(ops) {
    this.ops = ops;
    this.i = 0;
    this.offset = 0;
  }
  hasNext() {
    return this.i < this.ops.length;
  }
  peekType() {
    return this.hasNext() ? opType(this.ops[this.i]) : "retain";
  }
  peekLength() {
    return this.hasNext() ? opLength(this.ops[this.i]) - this.offset : Infinity;
  }
  next(length = Infinity) {
    if (!this.hasNext()) return { retain: length };
    const op = this.ops[this.i];
    const start = this.offset;
    const n = Math.min(length, opLength(op) - start);
    if (start + n === opLength(op)) {
      this.i += 1;
      this.offset = 0;
    } else {
      this.offset += n;
    }
    if (op.insert !== undefined) return { insert: op.insert.slice(start, start + n) };
    return op.delete !== undefined ? { delete: n } : { retain: n };
  }
}

/** compose(a, b): one delta with the effect of a, then b. */
export function compose(a, b) {
  const ai = new Iter(a);
  const bi = new Iter(b);
  const out = [];
  while (ai.hasNext() || bi.hasNext()) {
    if (bi.peekType() === "insert") {
      push(out, bi.next());
    } else if (ai.peekType() === "delete") {
      push(out, ai.next());
    } else {
      const n = Math.min(ai.peekLength(), bi.peekLength());
      const aop = ai.next(n);
      const bop = bi.next(n);
      if (bop.retain !== undefined) push(out, aop);
      else if (aop.retain !== undefined) push(out, bop); // b deletes text a kept
      // else: b deletes what a inserted; both vanish
    }
  }
  return chop(out);
}

/**
 * transform(a, b, priority): b rewritten to apply after a (a and b both apply to the
 * same text). With priority true, a is taken to come first: where both insert at the
 * same place, a's insert ends up before b's (Quill's a.transform(b, priority)). The
 * same contract as collab/delta.py's transform, checked by both against the shared
 * cases in tests/delta_cases.json. Convergence:
 *   apply(apply(s, a), transform(a, b, p)) === apply(apply(s, b), transform(b, a, !p))
 */
export function transform(a, b, priority) {
  const ai = new Iter(a);
  const bi = new Iter(b);
  const out = [];
  while (ai.hasNext() || bi.hasNext()) {
    if (ai.peekType() === "insert" && (priority || bi.peekType() !== "insert")) {
      push(out, { retain: ai.next().insert.length });
    } else if (bi.peekType() === "insert") {
      push(out, bi.next());
    } else {
      const n = Math.min(ai.peekLength(), bi.peekLength());
      const aop = ai.next(n);
      const bop = bi.next(n);
      if (aop.delete !== undefined) continue; // what b did to text a deleted is gone
      push(out, bop.delete !== undefined ? bop : { retain: n });
    }
  }
  return chop(out);
}

/**
 * transformIndex(delta, index, priority): where position `index` of the old text ends
 * up in the new text. An insert exactly at `index` moves it past the inserted text
 * unless priority is true (Quill's transformPosition).
 */
export function transformIndex(delta, index, priority = false) {
  // Quill's algorithm: `offset` walks the delta in step with `index`, both counted in
  // the text as rewritten so far (deleted text drops out, inserted text counts).
  let offset = 0;
  for (const op of delta) {
    if (offset > index) break;
    const n = opLength(op);
    if (op.delete !== undefined) {
      index -= Math.min(n, index - offset);
      continue;
    }
    if (op.insert !== undefined && (offset < index || !priority)) index += n;
    offset += n;
  }
  return index;
}

/**
 * anchoredDiff(prev, next, start, end, backward): the one replace op that turns prev
 * into next, for a text area whose selection was [start, end) just before the edit.
 * Where several single replaces give the same result (typing "a" into "aa"), the one
 * at the selection wins: at its start, or ending at the caret for a backward delete
 * (Backspace). A plain prefix/suffix diff would pick the wrong copy, and other people's
 * concurrent edits would then merge at the wrong place. Never splits a surrogate pair.
 */
export function anchoredDiff(prev, next, start, end, backward = false) {
  const L = prev.length;
  const N = next.length;
  const d = N - L;
  const max = Math.min(L, N);
  let p = 0; // common prefix
  while (p < max && prev.charCodeAt(p) === next.charCodeAt(p)) p += 1;
  if (p === L && p === N) return [];
  let q = 0; // common suffix (may overlap the prefix)
  while (q < max && prev.charCodeAt(L - 1 - q) === next.charCodeAt(N - 1 - q)) q += 1;
  // A replace of prev[a, a + r) works for any a <= p with a + r >= L - q and
  // r + d >= 0. The smallest r is rMin; every a in [lo, p] achieves it.
  const rMin = Math.max(L - q - p, -d, 0);
  const lo = Math.max(0, Math.min(p, L - q - rMin));
  const want = backward && start === end ? start - rMin : start;
  let a = Math.min(Math.max(want, lo), p);
  if (splitsPair(prev, a)) a -= 1;
  let r = Math.max(L - q - a, -d, 0);
  if (splitsPair(prev, a + r)) r += 1;
  const out = [];
  push(out, { retain: a });
  push(out, { insert: next.slice(a, a + r + d) });
  push(out, { delete: r });
  return chop(out);
}

// Bytes a string takes inside JSON.stringify's output, as UTF-8.
function jsonCharCost(s, i) {
  const c = s.charCodeAt(i);
  if (c === 0x22 || c === 0x5c) return 2;
  if (c < 0x20) return c === 8 || c === 9 || c === 10 || c === 12 || c === 13 ? 2 : 6;
  if (c < 0x80) return 1;
  if (c < 0x800) return 2;
  if (isHigh(c) || isLow(c)) return 2; // a pair is 4 bytes; lone ones never get here
  return 3;
}

function opCost(op) {
  if (op.insert === undefined) return 24; // {"retain":1234567890},
  let n = 14; // {"insert":""},
  for (let i = 0; i < op.insert.length; i++) n += jsonCharCost(op.insert, i);
  return n;
}

/** Approximate size in bytes of JSON.stringify(delta) as UTF-8 (never an underestimate). */
export function jsonSize(delta) {
  let n = 2;
  for (const op of delta) n += opCost(op);
  return n;
}

/**
 * splitDelta(delta, budget): [head, tail] with compose(head, tail) equal to delta,
 * head's JSON at most `budget` bytes (but never empty when delta is not), and tail a
 * delta on the text head produces. Used to keep a request under the server's
 * WebSocket message limit; tail may need splitting again.
 */
export function splitDelta(delta, budget) {
  const head = [];
  let cost = 2;
  let outLen = 0; // length of the text head produces, up to where it stops
  let i = 0;
  let rest = null;
  for (; i < delta.length; i++) {
    const op = delta[i];
    const c = opCost(op);
    if (cost + c <= budget) {
      head.push(op);
      cost += c;
      if (op.delete === undefined) outLen += opLength(op);
      continue;
    }
    const effective = head.some((h) => h.retain === undefined);
    if (op.insert !== undefined) {
      // Take as much of the insert as fits (at least one character if head would
      // otherwise do nothing), never cutting a surrogate pair.
      let j = 0;
      let used = cost + 14;
      while (j < op.insert.length && used + jsonCharCost(op.insert, j) <= budget) {
        used += jsonCharCost(op.insert, j);
        j += 1;
      }
      if (splitsPair(op.insert, j)) j -= 1;
      if (j === 0 && !effective) j = splitsPair(op.insert, 1) ? 2 : 1;
      if (j >= op.insert.length) {
        head.push(op);
        outLen += op.insert.length;
        continue;
      }
      if (j > 0) {
        head.push({ insert: op.insert.slice(0, j) });
        outLen += j;
      }
      rest = [{ insert: op.insert.slice(j) }, ...delta.slice(i + 1)];
    } else if (!effective) {
      head.push(op); // a lone retain or delete is small; head must make progress
      cost += c;
      if (op.delete === undefined) outLen += opLength(op);
      continue;
    } else {
      rest = delta.slice(i);
    }
    break;
  }
  if (rest === null) return [normalize(head), []];
  return [normalize(head), normalize([{ retain: outLen }, ...rest].filter((op) => opLength(op) > 0))];
}

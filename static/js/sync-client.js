// The browser side of the sync protocol (docs/protocol.md), without DOM or sockets.
//
// State:
//   shadow, version  the text the server last gave us (or the page's) and its version
//   inFlight         the one request awaiting its answer: {rid, json, sentText, ...}
//   segments         what is not sent yet, in order: [{ops, action}, ...]; each is
//                    "these ops, then this undo/redo" ("" for none). The ops of the
//                    first apply to inFlight.sentText (or to the shadow when nothing is
//                    in flight), each next one to the text the previous one produced.
//                    Usually there is one segment; an undo pressed while a request is
//                    in flight closes a segment so later typing is not undone with it.
//   text             the local text (what the text area shows): the shadow, then the
//                    in-flight ops, then every segment.
// An answer is never applied unless it answers the request in flight, and a push (the
// server's news for an idle editor) only when nothing is in flight and it starts at our
// version, so the shadow is always a version of the document the server has.

import {
  anchoredDiff,
  apply,
  compose,
  transform,
  transformIndex,
  isNoop,
  jsonSize,
  splitDelta,
} from "./delta.js";

/** A page-load id for `cid`: 32 hex digits (crypto.randomUUID needs a secure origin). */
export function randomId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const ENVELOPE_BYTES = 1000; // room for everything in a request but its ops

export class SyncClient {
  /**
   * @param {object} o
   * @param {string} o.text       initial text (the shadow)
   * @param {number} o.version    its version
   * @param {(json: string) => void} o.send   sends a frame (only called while connected)
   * @param {(delta: object[], text: string) => void} [o.onRemote]  remote changes (delta)
   *        made the local text `text`
   * @param {() => void} [o.onChange]  version, connection or unsent state changed
   * @param {() => number[]} [o.getSelection]  [anchor, head] in the local text
   * @param {string} [o.cid]
   * @param {number} [o.maxBytes]  largest request to send (Daphne's limit is 1 MiB)
   * @param {number} [o.idleMs]    sync this often when nothing else happens
   * @param {() => number} [o.now]
   * @param {() => Promise<{text: string, version: number}>} [o.fetchLatest]  the current
   *        text and version (over HTTP), for a base the server answers `too_old` to
   */
  constructor(o) {
    this.shadow = o.text;
    this.version = o.version;
    this.text = o.text;
    this.cid = o.cid || randomId();
    this.rid = 0;
    this.segments = [{ ops: [], action: "" }];
    this.inFlight = null;
    this.connected = false;
    this.failure = null; // {code, message} once syncing cannot go on
    this.maxBytes = o.maxBytes || 900_000;
    this.idleMs = o.idleMs || 5000;
    this.lastSend = 0;
    this.sendFrame = o.send;
    this.onRemote = o.onRemote || (() => {});
    this.onChange = o.onChange || (() => {});
    this.getSelection = o.getSelection || (() => [0, 0]);
    this.now = o.now || (() => Date.now());
    this.fetchLatest = o.fetchLatest || null;
    this.resyncing = false; // fetching the current text after `too_old`: send nothing
  }

  /** A local edit: delta applies to the current local text. */
  edit(delta) {
    if (isNoop(delta)) return;
    this.text = apply(this.text, delta);
    const last = this.segments[this.segments.length - 1];
    if (last.action) this.segments.push({ ops: delta, action: "" });
    else last.ops = compose(last.ops, delta);
    this.flush();
    this.onChange();
  }

  undo() {
    this.queueAction("undo");
  }

  redo() {
    this.queueAction("redo");
  }

  queueAction(action) {
    const last = this.segments[this.segments.length - 1];
    if (last.action) this.segments.push({ ops: [], action });
    else last.action = action;
    this.flush();
    this.onChange();
  }

  /** True when something typed (or an undo/redo) has not been acknowledged yet. */
  hasUnsent() {
    if (this.inFlight && !this.inFlight.empty) return true;
    return this.segments.some((s) => s.action || !isNoop(s.ops));
  }

  /** Where position `index` of the shadow (the text at this.version) is in the local
   * text: moved past everything not acknowledged yet (my text inserted exactly at it
   * goes after it, as the server will place it). For other people's carets. */
  toLocal(index) {
    let i = index;
    if (this.inFlight) i = transformIndex(this.inFlight.ops, i, true);
    for (const seg of this.segments) i = transformIndex(seg.ops, i, true);
    return Math.max(0, Math.min(i, this.text.length));
  }

  /** The transport is open: resend the unanswered request as it was, or catch up. */
  open() {
    this.connected = true;
    if (this.failure) {
      // Syncing stopped for good: send nothing more.
    } else if (this.inFlight) {
      this.inFlight.sentAt = this.now();
      this.sendFrame(this.inFlight.json);
    } else {
      this.flush(true);
    }
    this.onChange();
  }

  /** The transport closed. Whatever is in flight is resent by open(). */
  close() {
    this.connected = false;
    this.onChange();
  }

  /** Called every second or so: the idle sync that catches up a dropped push or poke. */
  tick() {
    if (this.connected && !this.inFlight && this.now() - this.lastSend >= this.idleMs) {
      this.flush(true);
    }
  }

  /** A parsed JSON message from the server. */
  receive(msg) {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "ack") this.onAck(msg);
    else if (msg.type === "push") this.onPush(msg);
    else if (msg.type === "poke") this.onPoke(msg);
    else if (msg.type === "error") this.onError(msg);
  }

  onPoke() {
    // With a request in flight, its answer will carry the news. Otherwise always
    // answer, even a poke that looks old: the server pokes an editor once and then
    // waits for its next sync before poking it again.
    if (this.inFlight) return;
    this.flush(true);
  }

  onPush(msg) {
    // Someone else's change, for an editor with nothing in flight. With a request in
    // flight, its answer brings the same news (and more): ignore the push. A push that
    // does not start at our version (never expected) is answered with a sync instead.
    if (this.inFlight || this.failure) return;
    if (msg.base !== this.version) {
      this.flush(true);
      return;
    }
    const shadow = this.applyDelta(this.shadow, msg, "a change");
    if (shadow !== null) this.advance(shadow, msg.version, msg.delta);
  }

  onAck(msg) {
    const sent = this.inFlight;
    if (!sent || msg.rid !== sent.rid) return; // not an answer to what is in flight
    const shadow = this.applyDelta(sent.sentText, msg, "an answer");
    if (shadow === null) return;
    this.inFlight = null;
    this.advance(shadow, msg.version, msg.delta);
  }

  /** `msg.delta` applied to `text`; null (and syncing stops) if the message is malformed
   * or does not fit: nothing more can be trusted to line up. */
  applyDelta(text, msg, what) {
    try {
      if (!Array.isArray(msg.delta) || !Number.isInteger(msg.version)) throw new Error("malformed message");
      return apply(text, msg.delta);
    } catch (err) {
      this.fail("bad_answer", `The server sent ${what} this page cannot use (${err.message}).`);
      return null;
    }
  }

  /** The shadow became `shadow` at `version` by `delta`, from the text sent (or the old
   * shadow): move everything not yet sent past it and show the result. */
  advance(shadow, version, delta) {
    // Rebase everything not yet sent past the server's change, segment by segment.
    // Where both insert at one place, the local text goes first: it is where this
    // editor's caret is, and it keeps what one person types in one piece when two
    // people type at the same spot (server-first would interleave their keystrokes).
    // Either choice converges: the server applies our ops exactly as we show them.
    let change = delta;
    for (const seg of this.segments) {
      const rebased = transform(change, seg.ops, false);
      change = transform(seg.ops, change, true);
      seg.ops = rebased;
    }
    this.shadow = shadow;
    this.version = version;
    if (!isNoop(change)) {
      // With nothing typed since (no ops in any segment), the local text is the new
      // shadow: no second copy of a long text per remote change.
      const typed = this.segments.some((seg) => !isNoop(seg.ops));
      this.text = typed ? apply(this.text, change) : shadow;
      this.onRemote(change, this.text);
    }
    this.flush();
    this.onChange();
  }

  onError(msg) {
    const sent = this.inFlight;
    if (!sent || msg.rid !== sent.rid) {
      console.warn("tandem: server error", msg);
      return;
    }
    // The request changed nothing: put its ops and action back in front.
    this.inFlight = null;
    const first = this.segments[0];
    if (!sent.action) first.ops = compose(sent.ops, first.ops);
    else this.segments.unshift({ ops: sent.ops, action: sent.action });
    if (msg.code === "too_large" && this.maxBytes > 16_000) {
      this.maxBytes = Math.floor(this.maxBytes / 2);
      this.flush();
    } else if (msg.code === "too_old" && this.fetchLatest && !this.resyncing) {
      // Our base is too far behind for the server to rebase onto: start again from the
      // current text, with everything not acknowledged moved onto it.
      this.resyncing = true;
      this.fetchLatest().then(
        ({ text, version }) => this.resync(text, version),
        () => {
          this.resyncing = false;
          this.fail(msg.code, msg.message || "The page fell too far behind.");
        },
      );
    } else {
      this.fail(msg.code || "error", msg.message || "The server refused an edit.");
    }
    this.onChange();
  }

  /** The document is `text` at `version` (fetched after `too_old`; nothing is in flight):
   * it becomes the shadow, and everything not sent yet moves past the difference from
   * the old shadow (a diff, not the exact history: an edit inside text that others
   * repeated may land beside it, but nothing typed is lost). */
  resync(text, version) {
    this.resyncing = false;
    if (this.inFlight || version <= this.version) {
      this.flush();
      return;
    }
    this.advance(text, version, anchoredDiff(this.shadow, text, 0, 0));
  }

  /** Stop syncing for good; the text stays in the page (and beforeunload warns). */
  fail(code, message) {
    this.failure = { code, message };
    console.error("tandem: sync stopped:", code, message);
    this.onChange();
  }

  /**
   * Sends the next request if the protocol allows: connected, nothing in flight, and
   * something to send (or `force`, for a catch-up sync with no ops).
   */
  flush(force = false) {
    if (!this.connected || this.inFlight || this.failure || this.resyncing) return;
    const seg = this.segments[0];
    if (!force && !seg.action && isNoop(seg.ops)) return;
    let ops = seg.ops;
    let action = seg.action;
    // Sending the one segment whole: the text sent is the local text (no copy).
    let sentText = this.segments.length === 1 ? this.text : null;
    if (jsonSize(ops) > this.maxBytes - ENVELOPE_BYTES) {
      // Too big for one WebSocket message: send a head now, the rest next time.
      const [head, tail] = splitDelta(ops, this.maxBytes - ENVELOPE_BYTES);
      ops = head;
      action = "";
      seg.ops = tail;
      sentText = null;
    } else if (this.segments.length > 1) {
      this.segments.shift();
    } else {
      this.segments[0] = { ops: [], action: "" };
    }
    if (sentText === null) sentText = apply(this.shadow, ops);
    const sel = this.getSelection().map((i) => Math.max(0, Math.min(i, sentText.length)));
    this.rid += 1;
    const request = { type: "sync", cid: this.cid, rid: this.rid, base: this.version, ops, action, sel };
    this.inFlight = {
      rid: this.rid,
      ops,
      action,
      sentText,
      json: JSON.stringify(request),
      empty: isNoop(ops) && !action,
      sentAt: this.now(),
    };
    this.lastSend = this.now();
    this.sendFrame(this.inFlight.json);
  }
}

// Hooks the sync client into htmx 2's WebSocket extension (hx-ws-2.js) on the element
// with ws-connect. htmx owns the socket and swaps the HTML fragments; JSON frames are
// taken out before htmx sees them. See docs/protocol.md and the pitfalls notes:
//  - socketWrapper is {send, sendImmediately, reconnect, queue} and nothing else, so
//    open/closed is tracked here, per raw socket (event.detail.event.target);
//  - send() would queue while closed and flush *after* our resend: never used here;
//  - the extension retries only after 1006/1011/1012/1013; after 1000/1001/1005 and
//    the server's "reconnect" code (protocol.closeRetry, 3xxx: the only codes Daphne
//    can send besides 1000) we call reconnect(); a 4xxx close is final.
// Close codes and their messages come from the page (collab/protocol.py is their home).

const IDLE_TICK_MS = 1000;
const STUCK_MS = 20_000; // a request unanswered this long on an open socket: reconnect

/** Capped exponential backoff with jitter: ~250 ms, 500 ms, 1 s ... up to 5 s. */
export function reconnectDelay(retry) {
  const cap = Math.min(5000, 250 * 2 ** Math.min(retry, 5));
  return cap / 2 + (Math.random() * cap) / 2;
}

const ADJECTIVES = ["Quiet", "Brave", "Calm", "Clever", "Gentle", "Happy", "Lucky", "Merry", "Swift", "Witty", "Bright", "Kind"];
const ANIMALS = ["Otter", "Badger", "Fox", "Heron", "Lynx", "Owl", "Panda", "Robin", "Seal", "Tiger", "Wren", "Yak"];

/** The display name for presence, kept in localStorage (a friendly random one at first). */
export function displayName(storage = window.localStorage) {
  const pick = (list) => list[crypto.getRandomValues(new Uint32Array(1))[0] % list.length];
  try {
    let name = storage.getItem("tandem:name");
    if (!name) {
      name = `${pick(ADJECTIVES)} ${pick(ANIMALS)}`;
      storage.setItem("tandem:name", name);
    }
    return name;
  } catch {
    return `${pick(ADJECTIVES)} ${pick(ANIMALS)}`; // storage blocked: a name per page load
  }
}

/** Remember a name the person chose (for every document and the next visit). */
export function saveName(name, storage = window.localStorage) {
  try {
    storage.setItem("tandem:name", name);
  } catch {
    // storage blocked: the name lasts for this page
  }
}

/**
 * Made before htmx opens the socket (at DOMContentLoaded), so every event is seen; the
 * editor comes later (attach): until then the socket may open and frames arrive, and
 * they wait. "connected" means the socket is open and the editor attached.
 * @param {object} o
 * @param {HTMLElement} o.element   the element with ws-connect (#collab)
 * @param {object} o.htmx           window.htmx, with the ws extension registered
 * @param {(s: {state: string, message?: string, final: boolean}) => void} o.onState
 *   (final: closed for good, a 4xxx close or stop(): nothing more will be saved)
 * @param {{closeRetry: number, closeMessages: Object<string, string>}} o.protocol
 * @param {string} o.name
 * @returns {{send: (json: string) => void, state: () => string, rename: (name: string) => void,
 *   attach: (client: import('./sync-client.js').SyncClient, onMessage: (msg: object) => void) => void,
 *   stop: (message: string) => void}}
 */
export function connect(o) {
  const { element, htmx } = o;
  let session = null; // {client, onMessage}, from attach()
  let held = []; // JSON frames from the open socket before attach()
  let latest = null; // the newest socket the extension created
  let open = null; // the socket that is open now, if any
  let wrapper = null; // the extension's socketWrapper
  let everOpened = false;
  let final = null; // {code, message} after a 4xxx close
  let notice = null; // the server's `notice` (it cannot save), until the next answer
  let closeRetries = 0;

  let backOnline = false; // the browser came back online while an attempt was in flight

  htmx.config.allowScriptTags = false;
  // The extension resets this when it registers, which has happened by now. It asks
  // when an attempt fails: an attempt made before the browser came back online is
  // followed by one at once, not after the backoff (up to 5 s).
  htmx.config.wsReconnectDelay = (retry) => {
    if (!backOnline) return reconnectDelay(retry);
    backOnline = false;
    return 0;
  };
  const create = htmx.createWebSocket || ((url) => new WebSocket(url, []));
  htmx.createWebSocket = (url) => {
    latest = create(url);
    return latest;
  };

  function state() {
    if (open && session) return "connected";
    return everOpened || final ? "offline" : "connecting";
  }

  function report() {
    o.onState({ state: state(), message: final ? final.message : notice || undefined, final: Boolean(final) });
  }

  function send(json) {
    if (!open || open !== latest || open.readyState !== WebSocket.OPEN || !wrapper) return;
    try {
      wrapper.sendImmediately(json);
    } catch (err) {
      console.warn("tandem: send failed", err); // the request is resent on reconnect
    }
  }

  element.addEventListener("htmx:wsOpen", (e) => {
    const socket = e.detail.event.target;
    if (!latest) latest = socket; // created before our hook was in place
    if (socket !== latest || final) {
      socket.close(); // an older attempt that opened late (keep one socket), or stopped
      return;
    }
    wrapper = e.detail.socketWrapper;
    wrapper.queue.length = 0; // nothing may go out after our own resend
    open = socket;
    closeRetries = 0;
    backOnline = false;
    // My name now, editor or not: others see it from the start.
    send(JSON.stringify({ type: "hello", name: o.name }));
    if (session) begin();
  });

  /** The socket is open and the editor is here: sync, and hand over what arrived
   * meanwhile. */
  function begin() {
    everOpened = true;
    report();
    session.client.open();
    const frames = held;
    held = [];
    frames.forEach(session.onMessage);
  }

  element.addEventListener("htmx:wsClose", (e) => {
    const socket = e.detail.event.target;
    const code = e.detail.event.code;
    wrapper = e.detail.socketWrapper || wrapper;
    if (socket === open) {
      open = null;
      held = []; // the next socket's hello and sync bring all of it again
      if (session) session.client.close();
      report();
    }
    if (socket !== latest) return; // a discarded socket closing late
    if (code >= 4000 && code < 5000) {
      const known = o.protocol.closeMessages[String(code)];
      final = { code, message: known || e.detail.event.reason || `Disconnected (${code}).` };
    } else if (code === 1000 || code === 1001 || code === 1005 || code === o.protocol.closeRetry) {
      // The extension gives up after these; we don't (a server restart can send them).
      const delay = backOnline ? 0 : reconnectDelay(closeRetries++);
      backOnline = false;
      setTimeout(() => {
        if (!final && !open && latest === socket && wrapper) wrapper.reconnect();
      }, delay);
    }
    report();
  });

  element.addEventListener("htmx:wsBeforeMessage", (e) => {
    const frame = e.detail.message;
    if (typeof frame !== "string" || !frame.startsWith("{")) return; // HTML: htmx swaps it
    e.preventDefault();
    let msg;
    try {
      msg = JSON.parse(frame);
    } catch {
      console.warn("tandem: unreadable JSON frame");
      return;
    }
    if (msg && msg.type === "notice") {
      notice = typeof msg.message === "string" ? msg.message : null;
      report();
      return;
    }
    if (notice && msg && msg.type === "ack") {
      notice = null; // saved again
      report();
    }
    if (session) session.onMessage(msg);
    else held.push(msg);
  });

  // The browser knows the network is gone: a socket can look open for minutes before TCP
  // notices. Close it now so the status tells the truth; edits wait for the next socket.
  window.addEventListener("offline", () => {
    if (open) open.close();
  });

  // Back on the network: don't wait for the backoff timer.
  window.addEventListener("online", () => {
    if (final || open || !wrapper) return;
    if (latest && latest.readyState !== WebSocket.CLOSED) {
      backOnline = true; // already trying: if that fails, try again at once
      return;
    }
    wrapper.reconnect();
  });

  // Idle sync and a watchdog for a connection that died without closing. Timers are
  // throttled in a background tab, but the socket stays open and pushes still arrive.
  setInterval(() => {
    if (!open || !session) return;
    const { client } = session;
    if (client.inFlight && Date.now() - client.inFlight.sentAt > STUCK_MS && wrapper) {
      console.warn("tandem: no answer; reconnecting");
      wrapper.reconnect();
      return;
    }
    client.tick();
  }, IDLE_TICK_MS);

  /** A new display name: said at once, and again on every reconnect. */
  function rename(name) {
    o.name = name;
    send(JSON.stringify({ type: "hello", name }));
  }

  /** The editor is here: from now on frames go to it (and, once the socket is open,
   * it syncs). */
  function attach(client, onMessage) {
    session = { client, onMessage };
    if (open) begin();
    else report();
  }

  /** The page cannot edit after all (its editor did not load): close for good, with
   * the reason, rather than stay in the room as someone who says nothing. */
  function stop(message) {
    final = { code: 0, message };
    for (const socket of new Set([open, latest])) if (socket) socket.close(1000);
    open = null;
    report();
  }

  report();
  return { send, state, rename, attach, stop };
}

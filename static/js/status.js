// The connection indicator #status: data-state is exactly one of connecting |
// connected | offline (tests outside the project rely on it), data-version is the
// version of the text this page holds in step with the server (its shadow).
// data-synced="true" means nothing typed is waiting to be acknowledged.
// A message (why the page is not syncing, and what to do) is the label too, cut short
// in the top bar; `detail` (#status-detail, under the top bar) shows it whole.

const SAVING_AFTER_MS = 700; // don't flash "Saving…" for every keystroke's round trip

export function bindStatus(el, detail = null) {
  const label = el.querySelector(".label") || el;
  let savingTimer = null;
  let showSaving = false;
  let last = null;

  function render(s) {
    last = s;
    let text;
    if (s.message) text = s.message;
    else if (s.state === "connecting") text = "Connecting…";
    else if (s.state === "offline") {
      // The browser knows when it has no network; otherwise it is the server that is
      // out of reach (stopped, restarting, or the network between).
      const why = navigator.onLine === false ? "Offline" : "Can't reach the server";
      text = s.dirty ? `${why} — your edits are kept and will sync` : `${why} — reconnecting…`;
    }
    else text = s.dirty && showSaving ? "Saving…" : "Connected";
    if (el.dataset.state !== s.state) el.dataset.state = s.state;
    if (el.dataset.version !== String(s.version)) el.dataset.version = String(s.version);
    const synced = String(!s.dirty);
    if (el.dataset.synced !== synced) el.dataset.synced = synced;
    if (label.textContent !== text) label.textContent = text;
    // Every keystroke and every answer comes through here: only what changed is written
    // (setting `hidden` or `title` to the value it has still makes the page recompute
    // the element's style, twice per keystroke).
    const message = s.message || "";
    if (el.title !== message) el.title = message;
    if (el.hasAttribute("data-message") !== Boolean(message)) el.toggleAttribute("data-message", Boolean(message));
    if (detail) {
      // Under the top bar: a message always; the offline state too, for a phone, whose
      // bar has no room for its words (tandem.css shows data-kind="state" there only).
      const below = message || (s.state === "offline" ? text : "");
      const kind = message ? "message" : "state";
      if (detail.textContent !== below) detail.textContent = below;
      if (detail.dataset.kind !== kind) detail.dataset.kind = kind;
      if (detail.hidden !== !below) detail.hidden = !below;
      if (detail.dataset.state !== s.state) detail.dataset.state = s.state;
    }
  }

  const again = () => last && render(last);
  window.addEventListener("online", again);
  window.addEventListener("offline", again);

  /**
   * @param {{state: string, version: number, dirty: boolean, message?: string}} s
   */
  return function update(s) {
    if (!s.dirty) {
      clearTimeout(savingTimer);
      savingTimer = null;
      showSaving = false;
    } else if (!showSaving && !savingTimer) {
      savingTimer = setTimeout(() => {
        savingTimer = null;
        showSaving = true;
        if (last) render(last);
      }, SAVING_AFTER_MS);
    }
    render(s);
  };
}

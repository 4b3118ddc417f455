// The live document list: the server nudges every open list (/ws/list/) when documents
// are created, renamed, edited or deleted anywhere; the page asks for its list again,
// with its own filter (the server decides what this visitor may see). Never under
// someone using the list: an open actions menu or a focused field waits until it closes.

const list = () => document.getElementById("document-list");
const filter = document.getElementById("filter");
let due = false;
let timer = null;

function busy() {
  const el = list();
  return Boolean(el && (el.querySelector("details[open]") || el.contains(document.activeElement)));
}

function refresh() {
  timer = null;
  if (!list() || !window.htmx) return;
  if (busy()) {
    due = true; // after the menu closes or focus leaves
    return;
  }
  due = false;
  window.htmx.ajax("GET", "/", { target: "#document-list", swap: "outerHTML", values: { q: filter ? filter.value : "" } });
}

function nudged() {
  if (!timer) timer = setTimeout(refresh, 250); // a burst of news: one request
}

document.addEventListener("focusout", () => due && setTimeout(() => due && nudged(), 0));
document.addEventListener("toggle", () => due && nudged(), true);

let retries = 0;
function open() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/ws/list/`);
  socket.addEventListener("open", () => {
    if (retries > 0) nudged(); // news may have been missed while away
    retries = 0;
  });
  socket.addEventListener("message", nudged);
  socket.addEventListener("close", (e) => {
    if (e.code >= 4000 && e.code < 5000) return; // refused: final
    const cap = Math.min(10_000, 500 * 2 ** Math.min(retries++, 5)); // backoff, jittered
    setTimeout(open, cap / 2 + (Math.random() * cap) / 2);
  });
}

if (list()) open();

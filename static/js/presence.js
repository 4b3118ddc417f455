// Who is here: my name (the #name field) and the presence list (#presence).
//
// The server renders #presence for everyone alike (one broadcast per room, not one per
// person), so "me first, marked as me" is done here, each time htmx swaps a new list in.

/**
 * The name field: Enter or leaving it renames me (once per actual change).
 * @param {HTMLInputElement} input
 * @param {object} o
 * @param {string} o.name          my current name
 * @param {number} o.maxLength
 * @param {(name: string) => void} o.onRename
 */
export function bindName(input, o) {
  let current = o.name;
  input.maxLength = o.maxLength;
  input.value = current;
  function commit() {
    const name = input.value.replace(/\s+/g, " ").trim().slice(0, o.maxLength);
    if (!name) {
      input.value = current; // an empty name is no name: keep the old one
      return;
    }
    input.value = name;
    if (name === current) return;
    current = name;
    o.onRename(name);
  }
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      commit();
      input.blur();
    } else if (e.key === "Escape") {
      input.value = current;
      input.blur();
    }
  });
  input.addEventListener("blur", commit);
  return { name: () => current };
}

/** Put my entry first and mark it (the first entry with my name: other tabs of mine
 * show as themselves). */
export function markMe(list, myName) {
  if (!list) return;
  const people = Array.from(list.querySelectorAll("[data-name]"));
  const me = people.find((el) => el.dataset.name === myName);
  people.forEach((el) => {
    el.classList.remove("me");
    el.removeAttribute("aria-current");
    // Someone else holds a button (editing.js: a click shows where they are), named in
    // full for screen readers (the initials alone say little) and reached with Tab; the
    // entry stays a list item.
    const button = el.querySelector(":scope > button");
    if (el === me) {
      if (button) el.textContent = button.textContent;
    } else if (!button) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "avatar-button";
      b.textContent = el.textContent;
      b.setAttribute("aria-label", `${el.dataset.name}: show where they are`);
      el.replaceChildren(b);
    }
  });
  if (!me) return;
  me.classList.add("me");
  me.setAttribute("aria-current", "true");
  nameMe(me, myName);
  if (list.firstElementChild !== me) list.prepend(me);
}

/** Show my new name on my own entry at once (the server's list follows). */
export function renameMe(list, name) {
  const me = list && list.querySelector(".me[data-name]");
  if (!me) return;
  me.dataset.name = name;
  nameMe(me, name);
  me.textContent = initials(name);
}

/** My entry's name for the pointer (title) and for screen readers. */
function nameMe(me, name) {
  me.title = `${name} (you)`;
  me.setAttribute("aria-label", `${name} (you)`);
}

/** As collab/fragments.person: the first letter or digit of each of the first two words
 * that have one ("(Zoë) Li" gives "ZL"). */
export function initials(name) {
  const firsts = name.split(/\s+/).map((w) => (w.match(/[\p{L}\p{N}]/u) || [""])[0]).filter(Boolean);
  return firsts.slice(0, 2).join("").toUpperCase() || "?";
}

/** Keep #presence ordered and marked whenever htmx replaces it. */
export function watchPresence(getName) {
  const mark = () => markMe(document.getElementById("presence"), getName());
  const list = document.getElementById("presence");
  if (!list || !list.parentElement) return mark;
  // #presence is swapped out whole (hx-swap-oob): watch its parent for the new one.
  new MutationObserver(mark).observe(list.parentElement, { childList: true });
  mark();
  return mark;
}

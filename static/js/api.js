// A small helper for the JSON API from a page: the CSRF token comes from the page's
// hx-headers (base.html), errors come back as the API's own message.

export function csrfToken() {
  try {
    return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
  } catch {
    return "";
  }
}

/** POST to the API; resolves to the JSON answer, rejects with an Error of its message. */
export async function post(url, body) {
  const isForm = body instanceof FormData;
  const response = await fetch(url, {
    method: "POST",
    headers: isForm
      ? { "X-CSRFToken": csrfToken() }
      : { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: isForm ? body : JSON.stringify(body),
    credentials: "same-origin",
  });
  let answer = {};
  try {
    answer = await response.json();
  } catch {
    // not JSON: an error page
  }
  if (!response.ok && response.status !== 207) {
    throw new Error(answer.error || `The server answered ${response.status}.`);
  }
  return answer;
}

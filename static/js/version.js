// "Restore this version" on a past version's page: a new change, then back to the editor.

import { post } from "./api.js";
import { displayName } from "./connection.js";

const button = document.getElementById("restore");
if (button) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await post(button.dataset.url, { version: Number(button.dataset.version), name: displayName() });
      window.location.assign(button.dataset.editor);
    } catch (error) {
      button.disabled = false;
      button.title = error.message;
      button.textContent = `Not restored: ${error.message}`;
    }
  });
}

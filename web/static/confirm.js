// Ask before doing something that cannot be undone: an in-page dialog (not window.confirm,
// which browsers may suppress) that resolves to true only when the user confirms.
"use strict";

(function () {
  const { el } = betascope;

  betascope.confirmAction = function confirmAction({ title, body, ok = "OK", cancel = "Keep it" }) {
    const dialog = el("dialog", { class: "confirm", id: "confirm-dialog", "aria-labelledby": "confirm-title" },
      el("h2", { id: "confirm-title" }, title),
      el("p", {}, body),
      el("div", { class: "confirm-buttons" },
        el("button", { type: "button", class: "button", id: "confirm-no" }, cancel),
        el("button", { type: "button", class: "button danger-solid", id: "confirm-yes" }, ok)));
    document.body.append(dialog);
    return new Promise((resolve) => {
      const done = (answer) => {
        dialog.close();
        dialog.remove();
        resolve(answer);
      };
      dialog.querySelector("#confirm-yes").addEventListener("click", () => done(true));
      dialog.querySelector("#confirm-no").addEventListener("click", () => done(false));
      dialog.addEventListener("cancel", (e) => { // Escape
        e.preventDefault();
        done(false);
      });
      dialog.showModal();
      dialog.querySelector("#confirm-no").focus();
    });
  };
})();

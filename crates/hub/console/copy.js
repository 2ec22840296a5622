// The Copy button of the admin area (a new agent's password, a site's snippet and
// identity secret, an API token): the clipboard API, or, where it is missing (plain
// http, an embedded browser), a scratch field off screen that holds the text itself.

import { t } from "./i18n.js";
import { h } from "./dom.js";

/**
 * A Copy button for the text `text()` gives (a masked secret copies unmasked). It says
 * "Copied" and sets `data-copied` (`yes`/`no`); `attrs` adds attributes (an `id`).
 */
export function copyButton(text, context, attrs = {}) {
  const copy = h("button", {
    class: "copy-button",
    text: t("copy"),
    attrs,
    on: {
      click: async () => {
        let ok = false;
        try {
          await navigator.clipboard.writeText(text());
          ok = true;
        } catch {
          const scratch = h("textarea", { value: text(), readOnly: true, attrs: { "aria-hidden": "true", tabindex: "-1" } });
          scratch.style.position = "fixed";
          scratch.style.insetInlineStart = "-9999px";
          document.body.appendChild(scratch);
          scratch.select();
          ok = document.execCommand("copy");
          scratch.remove();
        }
        copy.textContent = ok ? t("copied") : t("copy");
        copy.dataset.copied = ok ? "yes" : "no";
        if (ok) context.toast(t("copied"));
      },
    },
  });
  return copy;
}

/** Content: publish as the operator, and previews of both versions of a conflict. */
import { $, $$, api, showMessage } from "./app.js";

const PREVIEW_BYTES = 4000;

async function preview(node) {
  const type = node.dataset.type || "";
  if (!/^text\/|json|xml|javascript/.test(type)) {
    node.textContent = `(${type || "binary"}: open it to see it)`;
    return;
  }
  try {
    const response = await fetch(node.dataset.src, { credentials: "same-origin" });
    const text = await response.text();
    node.textContent = response.ok ? text.slice(0, PREVIEW_BYTES) : `(not available here: ${response.status})`;
  } catch {
    node.textContent = "(the station did not answer)";
  }
}

for (const node of $$(".preview[data-src]")) preview(node);

const form = $("#publish-form");
if (form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = $("#publish-message");
    const path = form.path.value.trim().replace(/^\/+/, "");
    const file = form.file.files[0];
    const text = form.text.value;
    if (!path) {
      showMessage(message, "Give the content a path, such as notices/shelters.html.");
      form.path.focus();
      return;
    }
    if (!file && !text) {
      showMessage(message, "Choose a file or write some text to publish.");
      return;
    }
    const body = new FormData();
    body.append("path", path);
    body.append("priority", form.priority.value);
    if (file) {
      body.append("file", file, file.name);
    } else {
      const type = /\.html?$/i.test(path) ? "text/html" : "text/plain";
      body.append("file", new Blob([text], { type }), path.split("/").pop() || "text.txt");
      body.append("contentType", `${type}; charset=utf-8`);
    }
    showMessage(message, "Publishing…", "info");
    const { ok, data } = await api("/api/content-catalog", { method: "POST", body });
    if (ok) {
      message.replaceChildren("Published ", Object.assign(document.createElement("a"), { href: data.url, textContent: data.url }), ".");
      message.className = "message success";
      message.hidden = false;
      form.reset();
    } else {
      showMessage(message, data.detail || data.error || "The station refused to publish this.");
    }
  });
}

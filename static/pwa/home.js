/** Home: the live peer list and recent content (the rest is kept live by app.js). */
import { $, $$, el, onSnapshot } from "./app.js";

function fill(list, items, render) {
  const rows = items.map(render);
  if (rows.length === 0) rows.push(el("li", { class: "muted", text: list.dataset.empty }));
  list.replaceChildren(...rows);
}

onSnapshot((snap) => {
  fill($("#peer-list"), snap.peers, (peer) => el("li", {},
    el("span", { class: `pill state-${peer.state}`, text: peer.state }), " ",
    el("strong", { text: peer.callsign || "(unknown)" }), " ",
    el("span", { class: "muted", text: peer.endpoint }),
    peer.linked ? " " : null, peer.linked ? el("span", { class: "tag", text: "linked" }) : null));
  fill($("#recent-content"), snap.content.recent, (entry) => el("li", {},
    el("a", { href: entry.url, text: `${entry.origin}/${entry.path}` }), " ",
    el("span", { class: "muted", text: entry.contentType })));
  for (const link of $$("a[href='/claim']")) link.hidden = snap.state !== "unclaimed";
});

/** Stations: add a station by URL (operator), and refresh the table on live changes. */
import { $, api, el, onSnapshot, showMessage } from "./app.js";

const form = $("#peer-form");
if (form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = $("#peer-message");
    const endpoint = form.endpoint.value.trim();
    if (!/^https?:\/\/[^/]+/.test(endpoint)) {
      showMessage(message, "Enter the station's address, such as http://192.168.1.30:8080.");
      form.endpoint.focus();
      return;
    }
    const payload = { endpoint };
    if (form.callsign.value.trim()) payload.callsign = form.callsign.value.trim().toUpperCase();
    const { ok, data } = await api("/api/peers", { method: "POST", json: payload });
    if (ok) {
      showMessage(message, `Added ${data.callsign || data.endpoint}. It appears below once it answers.`, "success");
      form.reset();
    } else {
      showMessage(message, data.detail || data.error || "The station refused this address.");
    }
  });
}

const cost = (peer) => (peer.cost === null || peer.cost === undefined
  ? "—" : `${peer.cost} (${peer.hops} hop${peer.hops === 1 ? "" : "s"})`);

onSnapshot((snap) => {
  const body = $("#peer-table tbody");
  const rows = snap.peers.map((peer) => el("tr", {},
    el("td", {}, el("strong", { text: peer.callsign || "(unknown)" }), el("br"),
      el("a", { class: "muted", href: `${peer.endpoint}/`, text: peer.endpoint })),
    el("td", {}, el("span", { class: `pill state-${peer.state}`, text: peer.state })),
    el("td", { text: peer.linked ? "linked" : "—" }),
    el("td", { text: cost(peer) }),
    el("td", { text: peer.rttMs === null || peer.rttMs === undefined ? "—" : `${Math.round(peer.rttMs)} ms` }),
    el("td", { text: peer.discoveryMethod })));
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: "6", class: "muted", text: "No other station known yet." })));
  body.replaceChildren(...rows);
});

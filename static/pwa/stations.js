/** Stations: add a station by URL (operator), and refresh the table on live changes. */
import { $, api, el, onSnapshot, showMessage } from "./app.js";
import { cameraAvailable, readQrFromFile, scanCamera, stationUrlFrom } from "./qrscan.js";

const form = $("#peer-form");
const scanMessage = $("#scan-message");

function scanned(text) {
  const url = stationUrlFrom(text || "");
  if (!url) {
    showMessage(scanMessage, text ? `This QR code is not a station's address: ${text}` : "No QR code found in this picture. Try again closer and in focus.");
    return;
  }
  scanMessage.replaceChildren("Station found: ", el("a", { href: `${url}/`, text: url }),
    form ? ". Its address is filled in below: press \u201cAdd station\u201d to add it." : ".");
  scanMessage.className = "message success";
  scanMessage.hidden = false;
  scanMessage.dataset.url = url;
  if (form) form.endpoint.value = url;
}

$("#qr-photo").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  showMessage(scanMessage, "Reading the QR code…", "info");
  try {
    scanned(await readQrFromFile(file));
  } catch (err) {
    showMessage(scanMessage, `This picture could not be read: ${err.message}`);
  }
});

const cameraButton = $("#qr-camera");
if (cameraAvailable()) {
  cameraButton.hidden = false;
  let scanning = null;
  cameraButton.addEventListener("click", async () => {
    if (scanning) {
      scanning.abort();
      return;
    }
    scanning = new AbortController();
    cameraButton.textContent = "Stop the camera";
    try {
      scanned(await scanCamera($("#qr-video"), scanning.signal));
    } catch (err) {
      showMessage(scanMessage, `The camera could not be used: ${err.message}`);
    } finally {
      scanning = null;
      cameraButton.textContent = "Scan with the camera";
    }
  });
}
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
    el("td", { "data-label": "Callsign" }, el("strong", { text: peer.callsign || "(unknown)" }), el("br"),
      el("a", { class: "muted", href: `${peer.endpoint}/`, text: peer.endpoint })),
    el("td", { "data-label": "State" }, el("span", { class: `pill state-${peer.state}`, text: peer.state })),
    el("td", { "data-label": "Link", text: peer.linked ? "linked" : "—" }),
    el("td", { "data-label": "Route cost", text: cost(peer) }),
    el("td", { "data-label": "Round trip", text: peer.rttMs === null || peer.rttMs === undefined ? "—" : `${Math.round(peer.rttMs)} ms` }),
    el("td", { "data-label": "Found by", text: peer.discoveryMethod })));
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: "6", class: "muted", text: "No other station known yet." })));
  body.replaceChildren(...rows);
});

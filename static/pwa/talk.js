/**
 * Talk: clients of this station open WebRTC data channels to each other through `/ws/signal`
 * (the station's own meshsite-signal.js) and exchange messages. The station relays only the
 * call set-up; the history stays in this browser (IndexedDB), with unread counts.
 */
import { $, el } from "./app.js";
import { SignalingClient } from "../signaling/meshsite-signal.js";

const ROOM = "talk";
const NAME_RE = /^[A-Za-z0-9/]{1,32}$/;

// --- history in IndexedDB ----------------------------------------------------------------
const dbReady = new Promise((resolve, reject) => {
  const request = indexedDB.open("meshsite-talk", 1);
  request.onupgradeneeded = () => {
    const db = request.result;
    const messages = db.createObjectStore("messages", { keyPath: "id", autoIncrement: true });
    messages.createIndex("conversation", "conversation");
    db.createObjectStore("unread", { keyPath: "conversation" });
  };
  request.onsuccess = () => resolve(request.result);
  request.onerror = () => reject(request.error);
});

async function store(name, mode, fn) {
  const db = await dbReady;
  return new Promise((resolve, reject) => {
    const tx = db.transaction(name, mode);
    const result = fn(tx.objectStore(name));
    tx.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
    tx.onerror = () => reject(tx.error);
  });
}

const saveMessage = (message) => store("messages", "readwrite", (s) => s.add(message));
const history = (conversation) => store("messages", "readonly", (s) => s.index("conversation").getAll(conversation));
const unreadGet = async (conversation) => ((await store("unread", "readonly", (s) => s.get(conversation))) || { count: 0 }).count;
const unreadSet = (conversation, count) => store("unread", "readwrite", (s) => s.put({ conversation, count }));

// --- state ---------------------------------------------------------------------------------
const people = new Map();   // client id -> {id, callsign}
const links = new Map();    // client id -> {pc, channel}
let client = null;
let me = "GUEST";
let selected = null;        // client id

const conversationOf = (peer) => (peer.callsign && peer.callsign !== "GUEST" ? peer.callsign : peer.id);
const status = (text) => { $("#talk-status").textContent = text; };

async function renderPeople() {
  const list = $("#people");
  const items = [];
  for (const peer of people.values()) {
    const unread = await unreadGet(conversationOf(peer));
    const button = el("button", { type: "button", class: `person${peer.id === selected ? " selected" : ""}`,
      "aria-pressed": peer.id === selected ? "true" : "false", "data-peer": peer.id },
    el("span", { text: peer.callsign }),
    unread ? el("span", { class: "badge", "aria-label": `${unread} unread`, text: String(unread) }) : null);
    button.addEventListener("click", () => select(peer.id));
    items.push(el("li", {}, button));
  }
  if (items.length === 0) items.push(el("li", { class: "muted", text: client ? "Nobody else here yet." : "Join to see who is here." }));
  list.replaceChildren(...items);
}

async function renderMessages() {
  const list = $("#messages");
  if (!selected || !people.has(selected)) {
    list.replaceChildren(el("li", { class: "muted", text: "Choose someone to talk to." }));
    return;
  }
  const rows = await history(conversationOf(people.get(selected)));
  list.replaceChildren(...rows.map((m) => el("li", { class: m.mine ? "mine" : "theirs" },
    el("span", { class: "who", text: m.mine ? "You" : m.from }),
    el("span", { class: "text", text: m.text }),
    el("time", { datetime: new Date(m.at).toISOString(), text: new Date(m.at).toLocaleTimeString() }))));
  list.lastElementChild?.scrollIntoView({ block: "nearest" });
}

function wireChannel(peerId, channel) {
  const link = links.get(peerId);
  link.channel = channel;
  channel.onopen = () => { if (peerId === selected) enableSend(true); };
  channel.onclose = () => { if (peerId === selected) enableSend(false); };
  channel.onmessage = async (event) => {
    let data;
    try { data = JSON.parse(event.data); } catch { return; }
    const peer = people.get(peerId) || { id: peerId, callsign: String(data.from || "GUEST") };
    const conversation = conversationOf(peer);
    await saveMessage({ conversation, from: peer.callsign, text: String(data.text || "").slice(0, 4000), at: Date.now(), mine: false });
    if (peerId !== selected || document.hidden) await unreadSet(conversation, (await unreadGet(conversation)) + 1);
    await renderPeople();
    if (peerId === selected) await renderMessages();
  };
}

function newLink(peerId) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  const link = { pc, channel: null };
  links.set(peerId, link);
  pc.ondatachannel = (event) => wireChannel(peerId, event.channel);
  pc.onconnectionstatechange = () => {
    if (["failed", "closed"].includes(pc.connectionState)) {
      links.delete(peerId);
      if (peerId === selected) enableSend(false);
    }
  };
  return link;
}

function enableSend(on) {
  $("#message-text").disabled = !on;
  $("#send-button").disabled = !on;
  $("#message-text").placeholder = on ? "Write a message" : "Connecting…";
}

async function select(peerId) {
  selected = peerId;
  const peer = people.get(peerId);
  $("#chat-heading").textContent = peer ? `Conversation with ${peer.callsign}` : "Conversation";
  if (peer) await unreadSet(conversationOf(peer), 0);
  await renderPeople();
  await renderMessages();
  let link = links.get(peerId);
  if (link && link.channel && link.channel.readyState === "open") {
    enableSend(true);
    return;
  }
  enableSend(false);
  if (!link) {
    link = newLink(peerId);
    wireChannel(peerId, link.pc.createDataChannel("talk"));
    await client.call(link.pc, peerId);
  }
}

async function join(event) {
  event.preventDefault();
  const name = $("#talk-name").value.trim();
  me = NAME_RE.test(name) ? name.toUpperCase() : "GUEST";
  if (name && me === "GUEST") status("Names are letters, digits and /: joining as GUEST.");
  if (client) client.close();
  client = new SignalingClient(SignalingClient.urlFor(location));
  client.on("peer-joined", (peer) => { people.set(peer.id, peer); renderPeople(); });
  client.on("peer-left", ({ peerId }) => { people.delete(peerId); links.delete(peerId); renderPeople(); });
  client.on("registered", ({ peers }) => {
    people.clear();
    for (const peer of peers) people.set(peer.id, peer);
    renderPeople();
  });
  client.on("close", () => status("Disconnected from the station; reconnecting…"));
  client.on("offer", async (detail) => {
    const link = links.get(detail.from) || newLink(detail.from);
    await client.accept(link.pc, detail);
  });
  try {
    const registered = await client.register({ callsign: me, room: ROOM });
    status(`Joined as ${registered.callsign || me}.`);
    document.documentElement.dataset.talk = "joined";
  } catch (err) {
    status(`Could not join: ${err.message}`);
  }
}

async function send(event) {
  event.preventDefault();
  const input = $("#message-text");
  const text = input.value.trim();
  const link = links.get(selected);
  if (!text || !link || !link.channel || link.channel.readyState !== "open") return;
  link.channel.send(JSON.stringify({ text, from: me }));
  await saveMessage({ conversation: conversationOf(people.get(selected)), from: me, text, at: Date.now(), mine: true });
  input.value = "";
  await renderMessages();
}

$("#name-form").addEventListener("submit", join);
$("#send-form").addEventListener("submit", send);
renderPeople();
renderMessages();

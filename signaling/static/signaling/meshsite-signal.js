/**
 * meshsite-signal.js — a small client for a Meshsite station's native signaling protocol
 * (WebSocket `/ws/signal`, see docs/signaling-client.md and docs/signaling.md).
 *
 * ES module, no dependencies, works in browsers (and in any runtime with a WHATWG WebSocket).
 *
 *   import { SignalingClient } from "/static/signaling/meshsite-signal.js";
 *   const client = new SignalingClient(SignalingClient.urlFor(location));
 *   client.on("offer", async ({ from, offer }) => { ... });
 *   const { clientId, peers } = await client.register({ callsign: "GUEST", room: "net-1" });
 *   client.sendOffer(peerId, await pc.createOffer());
 *
 * Wire frames (JSON text, one object per frame):
 *   client -> station: REGISTER {callsign, room?, certificate?, ...proof}, OFFER {target, offer},
 *                      ANSWER {target, answer}, ICE_CANDIDATE {target, candidate}, LIST_PEERS {}
 *   station -> client: REGISTERED {clientId, serverOwner, peers}, PEER_JOINED {peer},
 *                      PEER_LEFT {peerId}, OFFER_RECEIVED / ANSWER_RECEIVED /
 *                      ICE_CANDIDATE_RECEIVED {from, ...payload}, ERROR {error, details}
 *                      and the answer to LIST_PEERS (a frame carrying `peers`).
 *
 * Events (`client.on(name, fn)` or `client.addEventListener(name, e => e.detail)`):
 *   open, registered, peers, peer-joined, peer-left, offer, answer, ice-candidate,
 *   server-error, message (every frame), close, reconnecting, reconnected.
 *
 * After an unexpected close the client reconnects with exponential backoff and full jitter
 * and sends the same REGISTER again (the station gives a new clientId: listen to `registered`).
 */

const DEFAULT_BACKOFF = Object.freeze({ initialMs: 500, maxMs: 30000, factor: 2, maxAttempts: Infinity });

/** Close codes after which reconnecting would only repeat the same refusal. */
const FINAL_CLOSE_CODES = new Set([1008, 1009]);

export class SignalingError extends Error {
  /** @param {string} code station error code (e.g. "unknown-target") @param {string} details */
  constructor(code, details) {
    super(details ? `${code}: ${details}` : code);
    this.name = "SignalingError";
    this.code = code;
    this.details = details;
  }
}

export class SignalingClient extends EventTarget {
  /**
   * @param {string} url WebSocket URL of `/ws/signal`, e.g. "ws://10.0.0.5:8080/ws/signal".
   * @param {object} [options]
   * @param {boolean} [options.reconnect=true] reconnect after an unexpected close.
   * @param {object} [options.backoff] {initialMs, maxMs, factor, maxAttempts}.
   * @param {number} [options.requestTimeoutMs=10000] how long register()/listPeers() wait.
   * @param {typeof WebSocket} [options.WebSocket] a WebSocket implementation (default: global).
   */
  constructor(url, options = {}) {
    super();
    this.url = url;
    this.reconnect = options.reconnect ?? true;
    this.backoff = { ...DEFAULT_BACKOFF, ...(options.backoff || {}) };
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10000;
    this._WebSocket = options.WebSocket || globalThis.WebSocket;
    this.ws = null;
    this.clientId = null;
    this.serverOwner = null;
    /** @type {Map<string, {id: string, callsign: string, hasLicense?: boolean}>} */
    this.peers = new Map();
    this._registration = null;   // the REGISTER frame to repeat after a reconnect
    this._waiters = [];          // {match, resolve, reject, timer}
    this._attempt = 0;
    this._closedByUser = false;
    this._reconnectTimer = null;
  }

  /** The `/ws/signal` URL of the station that served `location` (ws:, or wss: under https:). */
  static urlFor(location, path = "/ws/signal") {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}${path}`;
  }

  /** Subscribe to an event; `fn` receives the event's detail. Returns an unsubscribe function. */
  on(name, fn) {
    const listener = (event) => fn(event.detail);
    this.addEventListener(name, listener);
    return () => this.removeEventListener(name, listener);
  }

  /** Open the WebSocket. Resolves when it is open, rejects if it closes first. */
  connect() {
    this._closedByUser = false;
    clearTimeout(this._reconnectTimer);
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new this._WebSocket(this.url);
      } catch (err) {
        reject(err);
        return;
      }
      this.ws = ws;
      let opened = false;
      ws.onopen = () => {
        opened = true;
        this._attempt = 0;
        this._emit("open", { url: this.url });
        resolve();
      };
      ws.onmessage = (event) => this._onFrame(event.data);
      ws.onerror = () => {};  // a close event always follows; it carries the useful code
      ws.onclose = (event) => {
        if (this.ws === ws) this.ws = null;
        const info = { code: event.code, reason: event.reason, wasClean: event.wasClean };
        this._failWaiters(new SignalingError("closed", `connection closed (${event.code})`));
        this._emit("close", info);
        if (!opened) reject(new SignalingError("connect-failed", `could not open ${this.url}`));
        this._scheduleReconnect(event.code);
      };
    });
  }

  /**
   * Register with the station. Resolves with the REGISTERED frame ({clientId, serverOwner,
   * peers}); rejects with a SignalingError when the station answers ERROR.
   * @param {object} [params]
   * @param {string} [params.callsign="GUEST"]
   * @param {string} [params.room] room to join (scopes presence and relay).
   * @param {object} [params.extra] more REGISTER fields (certificate, proof, ...), sent as is.
   */
  async register({ callsign = "GUEST", room, extra = {} } = {}) {
    const frame = { type: "REGISTER", callsign, ...extra };
    if (room !== undefined && room !== null) frame.room = room;
    this._registration = frame;
    if (!this.isOpen) await this.connect();
    return this._request(frame, (msg) => msg.type === "REGISTERED");
  }

  /** Ask for the peer list; resolves with an array of {id, callsign, hasLicense}. */
  async listPeers() {
    const reply = await this._request(
      { type: "LIST_PEERS" },
      (msg) => msg.type !== "REGISTERED" && Array.isArray(msg.peers),
    );
    return reply.peers;
  }

  /** Relay an SDP offer (an RTCSessionDescription or {type, sdp}) to `target` (id or callsign). */
  sendOffer(target, offer) {
    this.send({ type: "OFFER", target, offer: plainDescription(offer) });
  }

  /** Relay an SDP answer to `target`. */
  sendAnswer(target, answer) {
    this.send({ type: "ANSWER", target, answer: plainDescription(answer) });
  }

  /** Relay one ICE candidate (an RTCIceCandidate or its JSON) to `target`. */
  sendIceCandidate(target, candidate) {
    const c = typeof candidate.toJSON === "function" ? candidate.toJSON() : candidate;
    this.send({
      type: "ICE_CANDIDATE",
      target,
      candidate: { candidate: c.candidate, sdpMLineIndex: c.sdpMLineIndex, sdpMid: c.sdpMid },
    });
  }

  /**
   * Wire an RTCPeerConnection to one remote peer: local ICE candidates go to `target`;
   * remote answers and candidates from `target` are applied to `pc`. Incoming offers are left
   * to the application (it decides whether to accept a call). Returns a function that unwires.
   */
  attachPeerConnection(pc, target) {
    const onCandidate = (event) => {
      if (event.candidate && event.candidate.candidate) this.sendIceCandidate(target, event.candidate);
    };
    pc.addEventListener("icecandidate", onCandidate);
    const offAnswer = this.on("answer", ({ from, answer }) => {
      if (from === target) pc.setRemoteDescription(answer).catch((err) => this._emit("webrtc-error", err));
    });
    const offCandidate = this.on("ice-candidate", ({ from, candidate }) => {
      if (from === target) pc.addIceCandidate(candidate).catch((err) => this._emit("webrtc-error", err));
    });
    return () => {
      pc.removeEventListener("icecandidate", onCandidate);
      offAnswer();
      offCandidate();
    };
  }

  /** Call `target`: create an offer on `pc`, send it, and wire candidates and the answer. */
  async call(pc, target) {
    const unwire = this.attachPeerConnection(pc, target);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this.sendOffer(target, pc.localDescription);
    return unwire;
  }

  /** Accept an `offer` event's detail on `pc`: set it, answer, and wire candidates. */
  async accept(pc, { from, offer }) {
    const unwire = this.attachPeerConnection(pc, from);
    await pc.setRemoteDescription(offer);
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    this.sendAnswer(from, pc.localDescription);
    return unwire;
  }

  /** Send one frame; throws when the socket is not open. */
  send(frame) {
    if (!this.isOpen) throw new SignalingError("not-connected", "the signaling socket is not open");
    this.ws.send(JSON.stringify(frame));
  }

  get isOpen() {
    return !!this.ws && this.ws.readyState === 1;
  }

  /** Close for good (no reconnect). */
  close(code = 1000, reason = "") {
    this._closedByUser = true;
    clearTimeout(this._reconnectTimer);
    if (this.ws) this.ws.close(code, reason);
  }

  // --- internals -------------------------------------------------------------------------

  _emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  _request(frame, match) {
    return new Promise((resolve, reject) => {
      const waiter = { match, resolve, reject, timer: null };
      waiter.timer = setTimeout(() => {
        this._waiters = this._waiters.filter((w) => w !== waiter);
        reject(new SignalingError("timeout", `no answer to ${frame.type} in ${this.requestTimeoutMs} ms`));
      }, this.requestTimeoutMs);
      this._waiters.push(waiter);
      try {
        this.send(frame);
      } catch (err) {
        clearTimeout(waiter.timer);
        this._waiters = this._waiters.filter((w) => w !== waiter);
        reject(err);
      }
    });
  }

  _failWaiters(err) {
    const waiters = this._waiters;
    this._waiters = [];
    for (const w of waiters) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  }

  _settle(msg) {
    // An ERROR answers the oldest pending request: the station handles frames in order.
    const index = msg.type === "ERROR" ? (this._waiters.length ? 0 : -1)
      : this._waiters.findIndex((w) => w.match(msg));
    if (index < 0) return;
    const [w] = this._waiters.splice(index, 1);
    clearTimeout(w.timer);
    if (msg.type === "ERROR") w.reject(new SignalingError(msg.error || "error", msg.details || ""));
    else w.resolve(msg);
  }

  _onFrame(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      this._emit("server-error", new SignalingError("bad-frame", "the station sent invalid JSON"));
      return;
    }
    if (!msg || typeof msg.type !== "string") return;
    this._emit("message", msg);
    switch (msg.type) {
      case "REGISTERED": {
        const again = this.clientId !== null;
        this.clientId = msg.clientId;
        this.serverOwner = msg.serverOwner ?? null;
        this._setPeers(msg.peers || []);
        this._emit("registered", msg);
        if (again) this._emit("reconnected", msg);
        break;
      }
      case "PEER_JOINED":
        if (msg.peer && msg.peer.id) this.peers.set(msg.peer.id, msg.peer);
        this._emit("peer-joined", msg.peer);
        break;
      case "PEER_LEFT":
        this.peers.delete(msg.peerId);
        this._emit("peer-left", { peerId: msg.peerId });
        break;
      case "OFFER_RECEIVED":
        this._emit("offer", msg);
        break;
      case "ANSWER_RECEIVED":
        this._emit("answer", msg);
        break;
      case "ICE_CANDIDATE_RECEIVED":
        this._emit("ice-candidate", msg);
        break;
      case "ERROR":
        this._emit("server-error", new SignalingError(msg.error || "error", msg.details || ""));
        break;
      default:
        if (Array.isArray(msg.peers)) {
          this._setPeers(msg.peers);
          this._emit("peers", msg.peers);
        }
    }
    this._settle(msg);
  }

  _setPeers(list) {
    this.peers = new Map(list.filter((p) => p && p.id).map((p) => [p.id, p]));
  }

  _scheduleReconnect(code) {
    if (this._closedByUser || !this.reconnect || FINAL_CLOSE_CODES.has(code)) return;
    if (this._attempt >= this.backoff.maxAttempts) return;
    const ceiling = Math.min(this.backoff.maxMs, this.backoff.initialMs * this.backoff.factor ** this._attempt);
    const delay = Math.round(Math.random() * ceiling);  // full jitter: no thundering herd
    this._attempt += 1;
    this._emit("reconnecting", { attempt: this._attempt, delayMs: delay });
    this._reconnectTimer = setTimeout(async () => {
      try {
        await this.connect();
        if (this._registration) {
          await this._request(this._registration, (msg) => msg.type === "REGISTERED");
        }
      } catch {
        // connect()'s close handler has already scheduled the next attempt
      }
    }, delay);
  }
}

function plainDescription(desc) {
  if (!desc) throw new TypeError("a session description is required");
  return { type: desc.type, sdp: desc.sdp };
}

/**
 * Reading a QR code: the browser's BarcodeDetector where it exists, else jsQR (vendored) on
 * the image's pixels. From a photo (a file input, which phones open on their camera, secure
 * context or not), or live from the camera where the page may use it (secure contexts).
 */
import { loadScript } from "./app.js";

const JSQR_URL = new URL("../vendor/jsqr-1.4.0/jsQR.js", import.meta.url).href;
const loadJsQR = () => loadScript(JSQR_URL, "jsQR");

async function detectNative(source) {
  if (!("BarcodeDetector" in window)) return null;
  try {
    const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
    const codes = await detector.detect(source);
    return codes.length ? codes[0].rawValue : "";
  } catch {
    return null;
  }
}

async function detectJsQR(source, width, height) {
  const jsQR = await loadJsQR();
  const canvas = document.createElement("canvas");
  const scale = Math.min(1, 1600 / Math.max(width, height));
  canvas.width = Math.round(width * scale);
  canvas.height = Math.round(height * scale);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(source, 0, 0, canvas.width, canvas.height);
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const code = jsQR(pixels.data, pixels.width, pixels.height, { inversionAttempts: "attemptBoth" });
  return code ? code.data : "";
}

/** The text of the QR code in an image file, or "" if none was found. */
export async function readQrFromFile(file) {
  const bitmap = await createImageBitmap(file);
  try {
    const native = await detectNative(bitmap);
    if (native) return native;
    return await detectJsQR(bitmap, bitmap.width, bitmap.height);
  } finally {
    bitmap.close();
  }
}

/** Whether live scanning can be offered here. */
export const cameraAvailable = () => window.isSecureContext && !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);

/** Scan `video` from the camera until a code is read (resolves with its text) or `signal` aborts. */
export async function scanCamera(video, signal) {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
  video.srcObject = stream;
  video.hidden = false;
  await video.play();
  try {
    for (;;) {
      if (signal && signal.aborted) return "";
      await new Promise((resolve) => requestAnimationFrame(resolve));
      if (!video.videoWidth) continue;
      const text = (await detectNative(video)) || (await detectJsQR(video, video.videoWidth, video.videoHeight));
      if (text) return text;
    }
  } finally {
    for (const track of stream.getTracks()) track.stop();
    video.hidden = true;
  }
}

/** A station's base URL from a scanned text (its page URL or its signaling URL), or "". */
export function stationUrlFrom(text) {
  let url;
  try {
    url = new URL(text.trim());
  } catch {
    return "";
  }
  const scheme = { "http:": "http:", "https:": "https:", "ws:": "http:", "wss:": "https:" }[url.protocol];
  if (!scheme) return "";
  return `${scheme}//${url.host}`;
}

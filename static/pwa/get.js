/**
 * Get your own station: prove a license in the browser (the claim page's certificate reading
 * and signing, node-forge or WebCrypto), obtain a download token for this station's package
 * index, and show the exact install commands with it. The private key never leaves this page.
 */
import { $, showMessage } from "./app.js";
import {
  ClaimError, CLAIM_ERRORS, apiMessage, base64ToBytes, loadForge, post, readCertificate, sign,
} from "./claim.js";

/** What each download-token API error means here (the claim's messages cover the rest). */
export const TOKEN_ERRORS = {
  ...CLAIM_ERRORS,
  bad_proof: "The signature does not match the certificate: the private key is not this certificate's key, so no token was given.",
  untrusted_root: "This certificate does not come from an authority this station trusts, so it cannot give you a download token. Ask the station's operator which license authorities it trusts.",
  bad_nonce: "The one-time code of this request expired or was already used. Press \u201cGet a download token\u201d again.",
  rate_limited: "Too many download-token requests from here. Wait a minute, then try again.",
  invalid: "The station could not read the request (certificate, chain, nonce or signature missing or malformed).",
  bad_signature: "A certificate of the chain has an invalid signature: this file has been altered or is not a real license certificate.",
};

const form = $("#token-form");
const message = $("#token-message");

function command(platform, { url, callsign, token }) {
  const args = `--index ${url} --callsign ${callsign} --token ${token} --trust-root ROOT.pem`;
  if (platform === "windows") {
    return [
      `Invoke-WebRequest -Uri ${url}/get/meshsite-install.py -OutFile meshsite-install.py`,
      `py -3 meshsite-install.py ${args} --venv $env:USERPROFILE\\meshsite`,
      "$env:USERPROFILE\\meshsite\\Scripts\\meshsite.exe runstation",
    ].join("\n");
  }
  return [
    `curl -fo meshsite-install.py ${url}/get/meshsite-install.py`,
    `python3 meshsite-install.py ${args} --venv ~/meshsite`,
    "~/meshsite/bin/meshsite runstation",
  ].join("\n");
}

function showToken(result) {
  const url = location.origin;
  $("#token-callsign").textContent = result.callsign;
  $("#token-value").textContent = result.token;
  const expires = new Date(result.expires);
  $("#token-expires").textContent = Number.isNaN(expires.getTime())
    ? result.expires : `${expires.toLocaleString()} (${expires.toISOString().replace(".000", "")})`;
  for (const platform of ["linux", "macos", "windows"]) {
    $(`#command-${platform}`).textContent = command(platform, { ...result, url });
  }
  $("#pip-command").textContent =
    `pip install --index-url ${url.replace("://", `://${result.callsign}:${result.token}@`)}/simple/ `
    + `--trusted-host ${location.host} meshsite`;
  $("#commands-placeholder").textContent =
    `These commands carry ${result.callsign}'s token: keep them to yourself.`;
  const done = $("#token-done");
  done.hidden = false;
  done.focus();
}

async function getToken(event) {
  event.preventDefault();
  const button = $("#token-button");
  button.disabled = true;
  $("#token-done").hidden = true;
  try {
    const info = await readCertificate({
      certFile: form.certificate.files[0], keyFile: form.key.files[0],
      password: form.password.value,
    });
    showMessage(message, `Proving the license of ${info.callsign}\u2026`, "info");
    const forge = await loadForge();
    const nonce = await post("/api/download-token/nonce");
    if (!nonce.ok) {
      showMessage(message, apiMessage(nonce.data, nonce.status, TOKEN_ERRORS, "the request"));
      return;
    }
    const signature = await sign(forge, info.key, base64ToBytes(nonce.data.message));
    const result = await post("/api/download-token", {
      certificate: info.certificate, chain: info.chain, nonce: nonce.data.nonce, signature,
    });
    if (!result.ok) {
      showMessage(message, apiMessage(result.data, result.status, TOKEN_ERRORS, "the request"));
      return;
    }
    showMessage(message, `Download token for ${result.data.callsign}.`, "success");
    showToken(result.data);
  } catch (err) {
    showMessage(message, err instanceof ClaimError ? err.message
      : `No token: ${err.message}`);
  } finally {
    button.disabled = false;
  }
}

async function copy(event) {
  const target = $(`#${event.currentTarget.dataset.copy}`);
  try {
    await navigator.clipboard.writeText(target.textContent);
    event.currentTarget.textContent = "Copied";
  } catch {
    // No clipboard on an insecure origin: select the text for the operator to copy.
    const range = document.createRange();
    range.selectNodeContents(target);
    const selection = getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    event.currentTarget.textContent = "Selected: press Ctrl+C";
  }
}

if (form) {
  form.addEventListener("submit", getToken);
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", copy);
  }
}

{% load static %}/* Meshsite service worker, served at /sw.js (scope /). Registered only where the page is a
 * secure context (localhost, HTTPS). It keeps the app shell, and every page and piece of
 * content once viewed, so that they open again while the station cannot be reached. */
const CACHE = "meshsite-v1";
const SHELL = [
  "/",
  "{% static 'css/station.css' %}",
  "{% static 'pwa/app.js' %}",
  "{% static 'pwa/home.js' %}",
  "{% static 'pwa/claim.js' %}",
  "{% static 'pwa/stations.js' %}",
  "{% static 'pwa/qrscan.js' %}",
  "{% static 'pwa/content.js' %}",
  "{% static 'pwa/talk.js' %}",
  "{% static 'pwa/get.js' %}",
  "{% static 'pwa/mail.js' %}",
  "{% static 'pwa/mail-crypto.js' %}",
  "{% static 'signaling/meshsite-signal.js' %}",
  "{% static 'pwa/icons/icon.svg' %}",
  "/manifest.webmanifest",
];
// Never cached: live data, the operator's actions, and the control plane.
const BYPASS = [/^\/api\//, /^\/admin\//, /^\/ws\//, /^\/signin/, /^\/signout/, /^\/api-auth\//, /^\/peerjs/, /^\/sw\.js$/];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (BYPASS.some((re) => re.test(url.pathname))) return;
  if (url.pathname.startsWith("/static/")) {
    // Static files: cache first (a new release changes the cache name).
    event.respondWith(caches.match(request).then((hit) => hit || fetch(request).then((response) => {
      if (response.ok) {
        const copy = response.clone();
        caches.open(CACHE).then((cache) => cache.put(request, copy));
      }
      return response;
    })));
    return;
  }
  // Pages and content: the station first (fresh), the copy from the last visit when it is down.
  event.respondWith(fetch(request).then((response) => {
    if (response.ok && response.type === "basic") {
      const copy = response.clone();
      caches.open(CACHE).then((cache) => cache.put(request, copy));
    }
    return response;
  }).catch(() => caches.match(request).then((hit) => hit || caches.match("/")
    .then((home) => home || new Response("This station cannot be reached, and this page was not saved on this device.",
      { status: 503, headers: { "Content-Type": "text/plain; charset=utf-8" } })))));
});

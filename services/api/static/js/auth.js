// The API key of this browser tab: asked for when the server requires one, kept in session
// storage (gone with the tab), sent only to this page's own origin, and the scopes it grants.
const STORE = "lookalike.key";
let granted = new Set(["search", "ingest", "admin"]);

const $ = (id) => document.getElementById(id);

/** Whether `url` goes to this page's own origin (the only place the key is ever sent). */
function sameOrigin(url) {
  return new URL(url, location.href).origin === location.origin;
}

/** `headers` plus the key's Authorization header, for a request to this origin only. */
export function withKey(url, headers = {}) {
  const key = sessionStorage.getItem(STORE);
  return key && sameOrigin(url) ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}

/** Whether the key (or an open server) grants `scope`. */
export function can(scope) {
  return granted.has(scope);
}

/** Show `url` in `img`: directly on an open server, else fetched with the key as a blob. */
export async function showImage(img, url) {
  const headers = withKey(url);
  if (!headers.Authorization) {
    img.src = url;
    return;
  }
  const response = await fetch(url, { headers });
  if (response.ok) img.src = URL.createObjectURL(await response.blob());
}

/** Play `url` in `video` from second `t`: directly on an open server, else fetched with the
 * key as a blob (a media element cannot send headers); `#t=` seeks once the clip loads. */
export async function showVideo(video, url, t) {
  const headers = withKey(url);
  let src = url;
  if (headers.Authorization) {
    const response = await fetch(url, { headers });
    if (!response.ok) throw new Error(`${response.status}: cannot load the clip`);
    src = URL.createObjectURL(await response.blob());
  }
  video.src = `${src}#t=${t}`;
}

/** A URL that shows `url` without headers: itself on an open server, else an object URL of
 * the picture fetched with the key (for an SVG <image>, which cannot send headers). */
export async function keyedUrl(url) {
  const headers = withKey(url);
  if (!headers.Authorization) return url;
  const response = await fetch(url, { headers });
  if (!response.ok) throw new Error(`${response.status}: cannot load ${url}`);
  return URL.createObjectURL(await response.blob());
}

/** An <img> showing `url` (see showImage), with the given attributes. */
export function keyedImage(url, attrs = {}) {
  const img = document.createElement("img");
  for (const [name, value] of Object.entries(attrs)) img.setAttribute(name, value);
  showImage(img, url);
  return img;
}

function askForKey(problem) {
  const dialog = $("key-dialog");
  $("key-error").textContent = problem;
  $("key-input").value = "";
  return new Promise((resolve) => {
    $("key-form").onsubmit = (event) => {
      event.preventDefault();
      sessionStorage.setItem(STORE, $("key-input").value.trim());
      dialog.close();
      resolve();
    };
    dialog.showModal();
  });
}

/** Ask the server who we are until it accepts (asking for a key while it refuses); then
 * record the scopes and mark the page with them, so what they do not allow is hidden. */
export async function signIn() {
  let problem = "";
  for (;;) {
    const response = await fetch("/v1/auth/me", { headers: withKey("/v1/auth/me") });
    if (response.ok) {
      const me = await response.json();
      granted = new Set(me.scopes);
      document.body.dataset.scopes = me.scopes.join(" ");
      $("key-button").hidden = !me.authenticated;
      $("key-button").textContent = `Key: ${me.name}`;
      return me;
    }
    if (response.status !== 401) throw new Error(`${response.status}: cannot reach the server`);
    if (sessionStorage.getItem(STORE)) problem = "That key was refused: unknown or revoked.";
    sessionStorage.removeItem(STORE);
    await askForKey(problem || "This server needs an API key (ask its administrator).");
  }
}

/** Forget the key of this tab and ask again. */
export function setupKeyButton() {
  $("key-button").addEventListener("click", () => {
    sessionStorage.removeItem(STORE);
    location.reload();
  });
}

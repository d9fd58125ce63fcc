// RFC 9421 HTTP Message Signatures in the browser, the profile of docs/pos-integration.md §2:
// label `pos`, covered "@method" "@path" "content-digest" (and "@query" when there is a query),
// Content-Digest (RFC 9530, SHA-256) of the body as sent, created, keyid, alg="ed25519" and a new
// random nonce per request; Ed25519 with the device's non-extractable key (WebCrypto).

const encoder = new TextEncoder();

export function base64(bytes) {
  let text = "";
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text);
}

function nonce() {
  const bytes = crypto.getRandomValues(new Uint8Array(18));
  return base64(bytes).replaceAll("+", "-").replaceAll("/", "_"); // 24 characters of A-Z a-z 0-9 - _
}

// The headers that sign `method target body` (target: the path, percent-encoded, with any query).
export async function signatureHeaders(device, method, target, body) {
  const at = target.indexOf("?");
  const path = at < 0 ? target : target.slice(0, at);
  const query = at < 0 ? "" : target.slice(at);
  const digest = `sha-256=:${base64(await crypto.subtle.digest("SHA-256", body))}:`;
  const names = ['"@method"', '"@path"', '"content-digest"', ...(query ? ['"@query"'] : [])];
  const params = `(${names.join(" ")});created=${Math.floor(Date.now() / 1000)};keyid="${device.keyId}";alg="ed25519";nonce="${nonce()}"`;
  const lines = [`"@method": ${method.toUpperCase()}`, `"@path": ${path}`, `"content-digest": ${digest}`];
  if (query) lines.push(`"@query": ${query}`);
  lines.push(`"@signature-params": ${params}`);
  const signature = await crypto.subtle.sign("Ed25519", device.privateKey, encoder.encode(lines.join("\n")));
  return { "Content-Digest": digest, "Signature-Input": `pos=${params}`, Signature: `pos=:${base64(signature)}:` };
}

// A signed request to our own /v1/pos: the answer's status and JSON body. A network failure
// throws (a TypeError from fetch): the caller decides whether to retry or queue. Each call signs
// again (a new nonce and `created`), so a retry with the same Idempotency-Key is never a replay.
export async function signedFetch(device, method, target, payload, idempotencyKey) {
  const body = payload === undefined ? new Uint8Array() : encoder.encode(JSON.stringify(payload));
  const headers = { Accept: "application/json", "Accept-Language": document.documentElement.lang || "fr",
    ...(await signatureHeaders(device, method, target, body)) };
  if (payload !== undefined) headers["Content-Type"] = "application/json";
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  const response = await fetch(target, { method, headers, body: method === "GET" ? undefined : body, cache: "no-store" });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

// A key for one intended action, made once and reused on every retry of it.
export function idempotencyKey() {
  return `web-${nonce()}`;
}

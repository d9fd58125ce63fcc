// Checking a card offline (docs/pos-integration.md "Card keys rotate"): a card is an EdDSA token
// (a JWS); it verifies with the cached key its header's `kid` names, while that key vouches for it
// (`exp`), while the card itself is in date, and unless the city's revocation list names it.

const decoder = new TextDecoder();

function fromBase64url(text) {
  const padded = text.replaceAll("-", "+").replaceAll("_", "/") + "===".slice((text.length + 3) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

// The card's claims if it is valid here and now by the cached keys and revocations, else null.
export async function checkCard(token, cache, city) {
  const parts = token.split(".");
  if (parts.length !== 3 || !cache || !cache.keys) return null;
  try {
    const header = JSON.parse(decoder.decode(fromBase64url(parts[0])));
    const claims = JSON.parse(decoder.decode(fromBase64url(parts[1])));
    const now = Math.floor(Date.now() / 1000);
    const jwk = cache.keys.find((key) => key.kid === header.kid);
    if (!jwk || (jwk.exp !== undefined && now >= jwk.exp)) return null;
    const key = await crypto.subtle.importKey("jwk", { kty: jwk.kty, crv: jwk.crv, x: jwk.x }, { name: "Ed25519" }, false, ["verify"]);
    const signed = new TextEncoder().encode(`${parts[0]}.${parts[1]}`);
    if (!(await crypto.subtle.verify("Ed25519", key, fromBase64url(parts[2]), signed))) return null;
    if (!Number.isInteger(claims.exp) || claims.exp <= now || (claims.nbf ?? 0) > now) return null;
    if (claims.city !== city || cache.revoked.includes(claims.sub)) return null;
    return claims;
  } catch {
    return null;
  }
}

// The receipt checker of /public/check, in the visitor's browser (WebCrypto: SHA-256, Ed25519).
// It follows docs/ledger-format.md "Receipts" step by step, in its order: the first failure is the
// result, named by the same codes as `entraide ledger verify-receipt`. `verifyReceipt(receipt, keys)`
// is pure (keys: an entraide.keys/1 document); the page fetches each ledger's keys and published
// checkpoints from /v1/transparency on this same origin.

const FORMAT = "entraide.receipt/1";
const MAX_ENTRIES = 16;
// The 14 hashed members in RFC 8785 order (sorted by key), then the seal.
const HASHED = ["amount", "credit_account", "debit_account", "expires_at_us", "group", "kind", "ledger", "phase",
  "prev_hash", "ref", "sequence", "time_us", "transfer_id", "v"];
const MEMBERS = [...HASHED, "hash", "key_id", "signature"];
const INTEGERS = new Set(["sequence", "amount", "time_us", "v", "expires_at_us"]);
const NULLABLE = new Set(["ref", "group", "expires_at_us"]);
const HEX64 = /^[0-9a-f]{64}$/;
const NOTE_LIMIT_BYTES = 16 * 1024;

export class Rejected extends Error {
  constructor(code, params = {}) {
    super(code);
    this.code = code;
    this.params = params;
  }
}

const encoder = new TextEncoder();

function hexToBytes(hex) {
  if (typeof hex !== "string" || hex.length % 2 !== 0 || !/^[0-9a-f]*$/.test(hex)) return null;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i += 1) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function base64ToBytes(text) {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return null;
  const raw = atob(text);
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

function equal(a, b) {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

async function ed25519Verifies(publicKey, signature, message) {
  try {
    const key = await crypto.subtle.importKey("raw", publicKey, "Ed25519", false, ["verify"]);
    return await crypto.subtle.verify("Ed25519", key, signature, message);
  } catch {
    return false; // a key or signature of the wrong length
  }
}

const nameOf = (entry) => `${entry.ledger}#${entry.sequence}`;
const hasLoneSurrogate = (text) => /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text);

function checkMembers(entry, index) {
  const keys = entry !== null && typeof entry === "object" && !Array.isArray(entry) ? Object.keys(entry) : [];
  if (keys.length !== MEMBERS.length || !MEMBERS.every((m) => keys.includes(m))) {
    throw new Rejected("malformed", { entry: `entries[${index}]` });
  }
  for (const member of MEMBERS) {
    const value = entry[member];
    if (value === null && NULLABLE.has(member)) continue;
    const ok = INTEGERS.has(member) ? Number.isSafeInteger(value) : typeof value === "string" && !hasLoneSurrogate(value);
    if (!ok) throw new Rejected("malformed", { entry: `entries[${index}].${member}` });
  }
  if (entry.v !== 1 || !HEX64.test(entry.hash)) throw new Rejected("malformed", { entry: `entries[${index}]` });
}

// RFC 8785 for these values: sorted keys, no whitespace; JSON.stringify writes strings and safe
// integers exactly as JCS does.
export function canonical(entry) {
  return `{${HASHED.map((key) => `${JSON.stringify(key)}:${JSON.stringify(entry[key])}`).join(",")}}`;
}

function validAt(key, timeUs) {
  return key.valid_from_us <= timeUs && (key.valid_until_us === null || timeUs < key.valid_until_us);
}

async function checkSeal(entry, keys) {
  const entryName = nameOf(entry);
  const computed = bytesToHex(await sha256(encoder.encode(canonical(entry))));
  if (computed !== entry.hash) throw new Rejected("hash_mismatch", { entry: entryName });
  const key = keys.get(entry.key_id);
  if (key === undefined) throw new Rejected("unknown_key", { entry: entryName, key_id: entry.key_id });
  if (!validAt(key, entry.time_us)) throw new Rejected("key_not_valid", { entry: entryName, key_id: entry.key_id });
  const signature = hexToBytes(entry.signature);
  if (signature === null || !(await ed25519Verifies(key.publicKey, signature, hexToBytes(entry.hash)))) {
    throw new Rejected("bad_signature", { entry: entryName });
  }
}

function checkGroup(entries) {
  const names = entries.map(nameOf);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) throw new Rejected("not_one_group", { entry: twice });
  if (entries.length > 1 && (entries[0].group === null || entries.some((e) => e.group !== entries[0].group))) {
    throw new Rejected("not_one_group", { entry: names.join(", ") });
  }
}

// A C2SP signed note of a tlog-checkpoint ("Checkpoints", "Verifying a note"): its ledger, size,
// root, time and the key that signed it, or null when it does not verify.
async function openNote(note, keys) {
  if (typeof note !== "string" || encoder.encode(note).length > NOTE_LIMIT_BYTES || /[\u0000-\u0009\u000b-\u001f]/.test(note)) return null;
  const split = note.indexOf("\n\n");
  if (split < 0 || !note.endsWith("\n")) return null;
  const text = note.slice(0, split + 1);
  const lines = text.slice(0, -1).split("\n");
  const signatures = note.slice(split + 2, -1).split("\n");
  if (lines.length < 4 || signatures.length > 100 || !/^entraide\/[^\s]+$/.test(lines[0])) return null;
  if (!/^(0|[1-9][0-9]*)$/.test(lines[1])) return null;
  const root = base64ToBytes(lines[2]);
  const times = lines.slice(3).filter((l) => /^time_us (0|[1-9][0-9]*)$/.test(l));
  if (root === null || root.length !== 32 || times.length !== 1 || lines.slice(3).some((l) => l === "")) return null;
  const origin = lines[0];
  const timeUs = Number(times[0].slice("time_us ".length));
  let signer = null;
  for (const line of signatures) {
    const match = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (match === null) return null;
    const blob = base64ToBytes(match[2]);
    if (match[1] !== origin || blob === null || blob.length !== 68) continue; // a cosignature, or another key
    for (const [keyId, key] of keys) {
      const keyHash = (await sha256(concat(encoder.encode(`${origin}\n`), Uint8Array.of(1), key.publicKey))).slice(0, 4);
      if (!equal(keyHash, blob.slice(0, 4))) continue;
      if (!(await ed25519Verifies(key.publicKey, blob.slice(4), encoder.encode(text))) || !validAt(key, timeUs)) return null;
      signer = keyId;
    }
  }
  if (signer === null) return null;
  return { ledger: origin.slice("entraide/".length), treeSize: Number(lines[1]), root, timeUs, keyId: signer };
}

// RFC 9162 §2.1.3.2: the root an audit path leads to from a leaf, or null when the path cannot be one.
export async function rootFromPath(leafHash, index, treeSize, path) {
  if (index >= treeSize) return null;
  let fn = index;
  let sn = treeSize - 1;
  let r = await sha256(concat(Uint8Array.of(0), leafHash));
  for (const node of path) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(concat(Uint8Array.of(1), node, r));
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = await sha256(concat(Uint8Array.of(1), r, node));
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

function checkProofShape(proof) {
  const exact = (object, members) => object !== null && typeof object === "object" && !Array.isArray(object)
    && Object.keys(object).length === members.length && members.every((m) => m in object);
  const shaped = exact(proof, ["ledgers"]) && Array.isArray(proof.ledgers) && proof.ledgers.every((item) =>
    exact(item, ["ledger", "checkpoint", "tree_size", "inclusions"]) && typeof item.ledger === "string"
    && typeof item.checkpoint === "string" && Number.isSafeInteger(item.tree_size) && item.tree_size >= 1
    && Array.isArray(item.inclusions) && item.inclusions.every((inc) => exact(inc, ["sequence", "index", "path"])
      && Number.isSafeInteger(inc.sequence) && Number.isSafeInteger(inc.index) && Array.isArray(inc.path)));
  if (!shaped) throw new Rejected("malformed", { entry: "proof" });
}

async function checkProof(entries, proof, keys) {
  checkProofShape(proof);
  const wanted = new Map(entries.map((e) => [nameOf(e), e]));
  const proved = new Set();
  const signed = [];
  for (const item of proof.ledgers) {
    const cp = await openNote(item.checkpoint, keys);
    if (cp === null) throw new Rejected("bad_checkpoint", { ledger: item.ledger });
    if (cp.ledger !== item.ledger || cp.treeSize !== item.tree_size) {
      throw new Rejected("checkpoint_mismatch", { ledger: item.ledger, tree_size: item.tree_size });
    }
    for (const inclusion of item.inclusions) {
      const entryName = `${item.ledger}#${inclusion.sequence}`;
      if (!wanted.has(entryName) || proved.has(entryName)) throw new Rejected("inclusion_mismatch", { entry: entryName });
      const path = inclusion.path.map((node) => (HEX64.test(node) ? hexToBytes(node) : null));
      if (path.includes(null)) throw new Rejected("malformed", { entry: entryName });
      const root = inclusion.index === inclusion.sequence - 1
        ? await rootFromPath(hexToBytes(wanted.get(entryName).hash), inclusion.index, cp.treeSize, path) : null;
      if (root === null || !equal(root, cp.root)) throw new Rejected("bad_path", { entry: entryName, tree_size: cp.treeSize });
      proved.add(entryName);
    }
    signed.push({ ledger: cp.ledger, tree_size: cp.treeSize, root_hash: bytesToHex(cp.root), key_id: cp.keyId, time_us: cp.timeUs });
  }
  const missing = [...wanted.keys()].find((n) => !proved.has(n));
  if (missing !== undefined) throw new Rejected("inclusion_mismatch", { entry: missing });
  return signed;
}

function keyMap(keysDoc) {
  const keys = new Map();
  for (const key of keysDoc.keys) {
    const publicKey = hexToBytes(key.public_key);
    if ((key.algorithm ?? "ed25519") === "ed25519" && publicKey !== null && publicKey.length === 32) {
      keys.set(key.key_id, { publicKey, valid_from_us: key.valid_from_us, valid_until_us: key.valid_until_us ?? null });
    }
  }
  return keys;
}

// The whole check: {entries: ["brossard#4"], checkpoints: [...] or null (no proof: inclusion not
// checked)}; throws Rejected at the first failure.
export async function verifyReceipt(receipt, keysDoc) {
  const keys = keyMap(keysDoc);
  if (receipt === null || typeof receipt !== "object" || receipt.format !== FORMAT) throw new Rejected("format");
  const members = Object.keys(receipt);
  if (members.length !== 3 || !["format", "entries", "proof"].every((m) => members.includes(m))
      || !Array.isArray(receipt.entries) || receipt.entries.length < 1 || receipt.entries.length > MAX_ENTRIES) {
    throw new Rejected("malformed", { entry: "receipt" });
  }
  receipt.entries.forEach(checkMembers);
  for (const entry of receipt.entries) await checkSeal(entry, keys);
  checkGroup(receipt.entries);
  const names = receipt.entries.map(nameOf);
  if (receipt.proof === null) return { entries: names, checkpoints: null };
  return { entries: names, checkpoints: await checkProof(receipt.entries, receipt.proof, keys) };
}

// --- the page -------------------------------------------------------------------------------

async function fetchJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (response.status === 404) return null;
  if (!response.ok) throw new Rejected("network");
  return response.json();
}

// The keys this site publishes for the receipt's ledgers, as one keys document.
async function publishedKeys(receipt) {
  const ledgers = [...new Set((Array.isArray(receipt?.entries) ? receipt.entries : []).map((e) => e?.ledger))];
  const keys = [];
  for (const ledger of ledgers) {
    if (typeof ledger !== "string" || !/^[a-z0-9][a-z0-9-]{0,62}$/.test(ledger)) continue; // the checks name it
    const published = await fetchJson(`/v1/transparency/${ledger}/keys`);
    if (published === null) throw new Rejected("unknown_ledger", { ledger });
    keys.push(...published.keys.map((k) => ({ ...k, algorithm: "ed25519" })));
  }
  return { format: "entraide.keys/1", keys };
}

// Every checkpoint the receipt was proved against must be one this site published (same size, same root).
async function checkPublished(checkpoints) {
  for (const cp of checkpoints) {
    const page = await fetchJson(`/v1/transparency/${cp.ledger}/checkpoints?after_size=${cp.tree_size - 1}&limit=1`);
    const listed = page?.checkpoints?.[0];
    if (!listed || listed.tree_size !== cp.tree_size || listed.root_hash !== cp.root_hash) {
      throw new Rejected("checkpoint_not_published", { ledger: cp.ledger, tree_size: cp.tree_size });
    }
  }
}

function message(code, params) {
  const template = document.querySelector(`#receipt-messages [data-code="${code}"]`)
    ?? document.querySelector('#receipt-messages [data-code="unreadable"]');
  return template.textContent.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

function show(result, kind, title, detail) {
  result.replaceChildren();
  result.className = `notice receipt-result ${kind}`;
  const heading = document.createElement("h2");
  heading.textContent = title;
  const paragraph = document.createElement("p");
  paragraph.textContent = detail;
  result.append(heading, paragraph);
  heading.tabIndex = -1;
  heading.focus();
}

async function checkText(text) {
  let receipt;
  try {
    receipt = JSON.parse(text);
  } catch {
    throw new Rejected("unreadable");
  }
  const checked = await verifyReceipt(receipt, await publishedKeys(receipt));
  if (checked.checkpoints !== null) await checkPublished(checked.checkpoints);
  return checked;
}

async function onSubmit(event, form, result) {
  event.preventDefault();
  // A chosen file is shown in the text box and checked from there: a later paste is checked as pasted.
  const fileInput = form.querySelector("#receipt-file");
  const textBox = form.querySelector("#receipt-text");
  if (fileInput.files.length > 0) {
    textBox.value = await fileInput.files[0].text();
    fileInput.value = "";
  }
  const text = textBox.value;
  const words = (code) => document.querySelector(`#receipt-messages [data-code="${code}"]`).textContent;
  show(result, "", words("checking"), "");
  try {
    const checked = await checkText(text);
    const entries = checked.entries.join(", ");
    if (checked.checkpoints === null) {
      show(result, "warning", words("unproved_title"), message("unproved", { entries }));
    } else {
      const checkpoints = checked.checkpoints.map((c) => `${c.ledger} (${c.tree_size})`).join(", ");
      show(result, "good", words("valid_title"), message("valid", { entries, checkpoints }));
    }
  } catch (error) {
    const code = error instanceof Rejected ? error.code : "unreadable";
    show(result, "error", words("invalid_title"), message(code, error instanceof Rejected ? error.params : {}));
  }
}

const form = document.querySelector("#receipt-form");
if (form !== null) {
  const result = document.querySelector("#receipt-result");
  form.hidden = false;
  document.querySelector("#receipt-needs-js")?.remove();
  form.addEventListener("submit", (event) => onSubmit(event, form, result));
  form.querySelector("#receipt-file").addEventListener("change", () => form.requestSubmit());
}

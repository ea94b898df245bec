// keyfront's signer against @aws-sdk/cloudfront-signer (a signer we did not write) and
// node:crypto. RSA signatures are deterministic: keyfront's URLs and cookies must carry the same
// parameters (the JS SDK orders URL parameters differently, so they are compared as sets).
// ECDSA signatures are randomized: they are verified with crypto.verify.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync, mkdtempSync } from "node:fs";
import { createPublicKey, verify } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getSignedUrl, getSignedCookies } from "@aws-sdk/cloudfront-signer";

const KEYS = new URL("../fixtures/keys/", import.meta.url).pathname;
const KEY_PAIR_ID = "K2JCJMDEHXQW5F";
const EXPIRES = 1_900_000_000;
const URLS = [
  "https://d111111abcdef8.cloudfront.net/image.jpg",
  "https://d111111abcdef8.cloudfront.net/videos/trailer.mp4?quality=hd&lang=en",
  "https://d111111abcdef8.cloudfront.net/a%20b/%E2%9C%93.m3u8?x=1",
];

function keyfront(...args) {
  const bin = process.env.KEYFRONT_BIN;
  assert.ok(bin, "KEYFRONT_BIN must name the keyfront binary (cargo test sets it)");
  return execFileSync(bin, ["sign", ...args], { encoding: "utf8" }).trim().split("\n");
}

const key = (name) => join(KEYS, name);
const pem = (name) => readFileSync(key(name), "utf8");
const params = (url) => Object.fromEntries(new URL(url).searchParams);
const base = (url) => url.split(/[?&](Expires|Policy)=/)[0];
const fromCloudFrontBase64 = (s) => Buffer.from(s.replace(/-/g, "+").replace(/_/g, "=").replace(/~/g, "/"), "base64");

for (const algorithm of ["SHA1", "SHA256"]) {
  for (const url of URLS) {
    test(`canned ${algorithm} URL equals the JS SDK's: ${url}`, () => {
      const theirs = getSignedUrl({ url, keyPairId: KEY_PAIR_ID, privateKey: pem("rsa-1.pem"), dateLessThan: new Date(EXPIRES * 1000), algorithm });
      const [ours] = keyfront("url", "--private-key", key("rsa-1.pem"), "--key-pair-id", KEY_PAIR_ID, "--url", url, "--expires", String(EXPIRES), "--hash", algorithm.toLowerCase());
      assert.equal(base(ours), base(theirs));
      assert.deepEqual(params(ours), params(theirs));
    });
  }
}

test("custom policy from a file signs identically (SHA-256)", () => {
  const policy = JSON.stringify({ Statement: [{ Resource: "https://d111111abcdef8.cloudfront.net/private/*", Condition: { DateLessThan: { "AWS:EpochTime": EXPIRES }, IpAddress: { "AWS:SourceIp": "192.0.2.0/24" } } }] });
  const dir = mkdtempSync(join(tmpdir(), "keyfront-"));
  writeFileSync(join(dir, "policy.json"), policy);
  const url = "https://d111111abcdef8.cloudfront.net/private/a.mp4";
  const theirs = getSignedUrl({ url, keyPairId: KEY_PAIR_ID, privateKey: pem("rsa-2.pem"), policy, algorithm: "SHA256" });
  const [ours] = keyfront("url", "--private-key", key("rsa-2.pem"), "--key-pair-id", KEY_PAIR_ID, "--url", url, "--policy-file", join(dir, "policy.json"), "--hash", "sha256");
  assert.deepEqual(params(ours), params(theirs));
  const theirCookies = getSignedCookies({ keyPairId: KEY_PAIR_ID, privateKey: pem("rsa-2.pem"), policy, algorithm: "SHA256" });
  const ourCookies = Object.fromEntries(keyfront("cookies", "--private-key", key("rsa-2.pem"), "--key-pair-id", KEY_PAIR_ID, "--policy-file", join(dir, "policy.json"), "--hash", "sha256").map((l) => l.split(/=(.*)/s).slice(0, 2)));
  assert.deepEqual(ourCookies, theirCookies);
});

test("canned cookies equal the JS SDK's, query strings included", () => {
  for (const [url, algorithm] of [[URLS[0], "SHA1"], [URLS[0], "SHA256"], [URLS[1], "SHA1"], [URLS[2], "SHA256"]]) {
    const theirs = getSignedCookies({ url, keyPairId: KEY_PAIR_ID, privateKey: pem("rsa-3.pem"), dateLessThan: new Date(EXPIRES * 1000), algorithm });
    const ours = Object.fromEntries(keyfront("cookies", "--private-key", key("rsa-3.pem"), "--key-pair-id", KEY_PAIR_ID, "--url", url, "--expires", String(EXPIRES), "--hash", algorithm.toLowerCase()).map((l) => l.split(/=(.*)/s).slice(0, 2)));
    assert.deepEqual(ours, Object.fromEntries(Object.entries(theirs).map(([k, v]) => [k, String(v)])));
  }
});

test("ECDSA signatures verify with node:crypto under the hash they say, and not the other", () => {
  const policy = JSON.stringify({ Statement: [{ Resource: URLS[0], Condition: { DateLessThan: { "AWS:EpochTime": EXPIRES } } }] });
  for (const [hash, other] of [["sha1", "sha256"], ["sha256", "sha1"]]) {
    const [signed] = keyfront("url", "--private-key", key("ec-1.pem"), "--key-pair-id", KEY_PAIR_ID, "--url", URLS[0], "--expires", String(EXPIRES), "--hash", hash);
    const p = params(signed);
    assert.equal(p["Hash-Algorithm"], hash === "sha256" ? "SHA256" : undefined);
    const signature = fromCloudFrontBase64(p.Signature);
    const pub = createPublicKey(pem("ec-1.pub.pem"));
    assert.ok(verify(hash, Buffer.from(policy), pub, signature), `${hash} signature under ${hash}`);
    assert.ok(!verify(other, Buffer.from(policy), pub, signature), `${hash} signature under ${other}`);
  }
});

test("ECDSA signatures verify with node:crypto", () => {
  for (const name of ["ec-1", "ec-2"]) {
    const [signed] = keyfront("url", "--private-key", key(`${name}.pem`), "--key-pair-id", KEY_PAIR_ID, "--url", URLS[1], "--expires", String(EXPIRES));
    const p = params(signed);
    assert.equal(p["Hash-Algorithm"], "SHA256");
    const policy = JSON.stringify({ Statement: [{ Resource: URLS[1], Condition: { DateLessThan: { "AWS:EpochTime": EXPIRES } } }] });
    const signature = fromCloudFrontBase64(p.Signature);
    assert.ok(verify("sha256", Buffer.from(policy), createPublicKey(pem(`${name}.pub.pem`)), signature));
    const other = name === "ec-1" ? "ec-2" : "ec-1";
    assert.ok(!verify("sha256", Buffer.from(policy), createPublicKey(pem(`${other}.pub.pem`)), signature));
  }
});

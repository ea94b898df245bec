// A tiny app that hands out CloudFront signed URLs, signing with the key keyfront mounts.
//
// GET /signed-url?path=/videos/intro.mp4  ->  {"url": "https://DOMAIN/videos/intro.mp4?Expires=...", "keyPairId": "K..."}
// GET /healthz                            ->  ok (once a key is mounted)
//
// Configuration (environment): KEY_DIR (the mounted Secret), CLOUDFRONT_DOMAIN,
// URL_LIFETIME_SECONDS (at most the SigningKeyGroup's maxSignedUrlLifetime), PORT.
//
// Signs with the AWS SDK's @aws-sdk/cloudfront-signer (RSA keys: keep the SigningKeyGroup's
// algorithm RSA2048). The key is read from the mount on every request, so a rotated key is
// used as soon as the kubelet has swapped it in.
"use strict";

const fs = require("node:fs");
const http = require("node:http");
const path = require("node:path");
const { getSignedUrl } = require("@aws-sdk/cloudfront-signer");

const KEY_DIR = process.env.KEY_DIR || "/etc/cloudfront-key";
const DOMAIN = process.env.CLOUDFRONT_DOMAIN;
const LIFETIME = Number(process.env.URL_LIFETIME_SECONDS || "300");

// The kubelet publishes each version of the Secret in a fresh directory and switches `..data`
// to it in one step: reading both files through `..data`, resolved once, never mixes the key
// ID of one version with the private key of another. (Plain files: read them as they are.)
function currentKey() {
  const data = path.join(KEY_DIR, "..data");
  const base = fs.existsSync(data) ? fs.realpathSync(data) : KEY_DIR;
  return {
    keyPairId: fs.readFileSync(path.join(base, "key_pair_id"), "utf8").trim(),
    privateKey: fs.readFileSync(path.join(base, "private_key.pem"), "utf8"),
  };
}

function signedUrl(urlPath) {
  const { keyPairId, privateKey } = currentKey();
  const dateLessThan = new Date(Date.now() + LIFETIME * 1000).toISOString();
  return { url: getSignedUrl({ url: `https://${DOMAIN}${urlPath}`, keyPairId, privateKey, dateLessThan }), keyPairId };
}

function reply(res, status, type, body) {
  res.writeHead(status, { "Content-Type": type, "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}

http
  .createServer((req, res) => {
    const request = new URL(req.url, "http://localhost");
    try {
      if (request.pathname === "/healthz") {
        currentKey();
        return reply(res, 200, "text/plain", "ok");
      }
      if (request.pathname !== "/signed-url") return reply(res, 404, "text/plain", "not found");
      const urlPath = request.searchParams.get("path") || "";
      if (!urlPath.startsWith("/")) return reply(res, 400, "text/plain", "path must start with /");
      reply(res, 200, "application/json", JSON.stringify(signedUrl(urlPath)));
    } catch (error) {
      reply(res, 503, "text/plain", `no usable key in ${KEY_DIR}: ${error.message}`);
    }
  })
  .listen(Number(process.env.PORT || "8080"));

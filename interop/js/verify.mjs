// Verifies captured webhook requests with the official Standard Webhooks
// JavaScript library. Reads a JSON array of cases on stdin:
//   [{"name": "...", "secret": "whsec_...", "headers": {...}, "body": "<base64>"}]
// and prints a JSON array of results: [{"name", "ok", "error", "type"}].
import { Webhook } from "standardwebhooks";

const input = await new Promise((resolve, reject) => {
  let data = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => (data += chunk));
  process.stdin.on("end", () => resolve(data));
  process.stdin.on("error", reject);
});

const results = JSON.parse(input).map((c) => {
  const body = Buffer.from(c.body, "base64");
  try {
    const event = new Webhook(c.secret).verify(body, c.headers);
    return { name: c.name, ok: true, type: event.type };
  } catch (err) {
    return { name: c.name, ok: false, error: String(err.message || err) };
  }
});
process.stdout.write(JSON.stringify(results));

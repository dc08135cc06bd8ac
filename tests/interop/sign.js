// Signs messages with the npm standardwebhooks package, an implementation independent of ours.
// Input: one JSON object per line {secret, id, timestamp, body_base64}; output: one signature line each.
const { Webhook } = require("standardwebhooks");
const lines = require("fs").readFileSync(0, "utf8").split("\n").filter((line) => line.trim());
for (const line of lines) {
  const message = JSON.parse(line);
  const body = Buffer.from(message.body_base64, "base64").toString("utf8");
  const webhook = new Webhook(message.secret);
  process.stdout.write(webhook.sign(message.id, new Date(message.timestamp * 1000), body) + "\n");
}

// Verifies messages with the npm standardwebhooks package: what `gitjob-webhook trigger` signs must
// pass it. Input: one JSON object per line {secret, headers, body_base64}; output: "ok" or the error.
const { Webhook } = require("standardwebhooks");
const lines = require("fs").readFileSync(0, "utf8").split("\n").filter((line) => line.trim());
for (const line of lines) {
  const message = JSON.parse(line);
  try {
    new Webhook(message.secret).verify(Buffer.from(message.body_base64, "base64").toString("utf8"),
                                       message.headers);
    process.stdout.write("ok\n");
  } catch (error) {
    process.stdout.write(`${error.message}\n`);
  }
}

// Reads base64 MessagePack frames, one per line, from stdin and prints each decoded with @msgpack/msgpack as one
// line of JSON: an independent decoder for the gateway's own MessagePack writer.
import { decode } from "@msgpack/msgpack";
import { createInterface } from "node:readline";

for await (const line of createInterface({ input: process.stdin })) {
  if (line.length > 0) {
    process.stdout.write(JSON.stringify(decode(Buffer.from(line, "base64"))) + "\n");
  }
}

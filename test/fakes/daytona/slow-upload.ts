/**
 * Run as its own process by test/providers/daytona.test.ts: the SDK's uploadFileStream, as the
 * provider calls it, sends 120 MiB (SLOW_UPLOAD_BYTES) from a subprocess's stdout, as cp's tar,
 * to a receiver that takes at most ~25 MB/s and answers once the chunked body's last chunk is in
 * (the sandbox is the fake's; its toolbox address is pointed at that receiver); prints how much
 * of the source had been read every 250 ms and this process's peak memory, as JSON. Its own
 * process: the test runner's heap would hide this one's.
 */
import { Daytona } from "@daytonaio/sdk";
import { FakeDaytona } from "./server";

const fake = new FakeDaytona({ apiKey: "slow" });
fake.start();
const sandbox = await new Daytona({ apiKey: "slow", apiUrl: fake.apiUrl }).create();

const RECEIVER = `
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
tail = b""
while True:
    d = c.recv(65536)
    if not d: break
    tail = (tail + d)[-200:]
    if tail.endswith(b"0\\r\\n\\r\\n"): break
    time.sleep(0.0025)
c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n")
c.close()
`;
const receiver = Bun.spawn(["python3", "-c", RECEIVER], { stdout: "pipe", stderr: "inherit" });
const port = Number(new TextDecoder().decode((await receiver.stdout.getReader().read()).value).trim());
const bytes = Number(process.env.SLOW_UPLOAD_BYTES ?? 120 * 1024 * 1024);
const producer = Bun.spawn(["head", "-c", String(bytes), "/dev/zero"], { stdout: "pipe" });
const source = producer.stdout.getReader();
let read = 0;
const file = new ReadableStream<Uint8Array>({
  async pull(controller) {
    const next = await source.read();
    if (next.done) return controller.close();
    read += next.value.length;
    controller.enqueue(next.value);
  },
});
let peak = 0;
const readSoFar: number[] = [];
const sample = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage.rss());
  readSoFar.push(read);
}, 250);
const started = performance.now();
// The SDK's toolbox client takes its address from here (Sandbox.refreshData does the same).
(sandbox as unknown as { axiosInstance: { defaults: { baseURL: string } } }).axiosInstance.defaults.baseURL = `http://127.0.0.1:${port}/toolbox/${sandbox.id}`;
await sandbox.fs.uploadFileStream(file, "/tmp/slow.bin");
clearInterval(sample);
await receiver.exited;
await fake.stop();
console.log(JSON.stringify({ seconds: (performance.now() - started) / 1000, read, readSoFar, peak: Math.max(peak, process.memoryUsage.rss()) }));
process.exit(0);

// Interop check for MCP Tasks (2025-11-25 form): the official TypeScript SDK client runs imagine as a
// task with `client.experimental.tasks.callToolStream`, over stdio and over Streamable HTTP: the task
// is created at once, its status is polled, the result equals a plain call's shape, tasks/list shows
// it, and a second task is cancelled. Usage: MJ_MCP_COMMAND=/path/to/mj-mcp node tasks.mjs
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";

const command = process.env.MJ_MCP_COMMAND || "mj-mcp";
const fastSim = { MJ_SIM_JOB_SECONDS: "1", MJ_POLL_INTERVAL: "0.2", MJ_OUTPUT_DIR: "off" };
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MJ_")));

async function exercise(client) {
  assert.ok(client.getServerCapabilities().tasks?.requests?.tools?.call, "capabilities.tasks.requests.tools.call");
  const { tools } = await client.listTools(); // callToolStream asks this listing which tools take tasks
  const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
  assert.equal(byName.imagine.execution?.taskSupport, "optional");
  assert.equal(byName.get_task.execution, undefined);

  const seen = [];
  let result;
  const stream = client.experimental.tasks.callToolStream(
    { name: "imagine", arguments: { prompt: "a paper boat on a pond" } },
    CallToolResultSchema,
    { task: { ttl: 600_000 }, timeout: 60_000 },
  );
  for await (const message of stream) {
    seen.push(message.type);
    if (message.type === "taskCreated") assert.equal(message.task.status, "working");
    if (message.type === "result") result = message.result;
    if (message.type === "error") throw message.error;
  }
  assert.equal(seen[0], "taskCreated");
  assert.ok(seen.includes("taskStatus"), `stream: ${seen}`);
  assert.equal(seen.at(-1), "result");
  assert.notEqual(result.isError, true, JSON.stringify(result.content));
  assert.equal(result.structuredContent.status, "SUCCESS");
  assert.ok(result.content.some((c) => c.type === "image"));

  const { tasks } = await client.experimental.tasks.listTasks();
  assert.ok(tasks.some((t) => t.status === "completed"), JSON.stringify(tasks));

  // Cancel: the task ends "cancelled", and says the upstream job is not cancelled with it.
  const cancelling = client.experimental.tasks.callToolStream(
    { name: "imagine", arguments: { prompt: "a boat that never sails" } },
    CallToolResultSchema,
    { task: {}, timeout: 60_000 },
  );
  const first = await cancelling.next();
  assert.equal(first.value.type, "taskCreated");
  const taskId = first.value.task.taskId;
  const cancelled = await client.experimental.tasks.cancelTask(taskId);
  assert.equal(cancelled.status, "cancelled");
  assert.match(cancelled.statusMessage, /does not cancel the Midjourney job/);
  let last;
  for await (const message of cancelling) last = message;
  assert.equal(last.type, "error");
  assert.equal((await client.experimental.tasks.getTask(taskId)).status, "cancelled");

  // A plain call still answers with the result itself.
  const plain = await client.callTool({ name: "imagine", arguments: { prompt: "a plain boat" } }, undefined, {
    timeout: 60_000,
  });
  assert.equal(plain.structuredContent.status, "SUCCESS");
}

function freePort() {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitHealthy(url) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`${url}/health`)).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server at ${url} did not become healthy`);
}

async function withClient(transport, body) {
  const client = new Client({ name: "interop-ts-tasks", version: "1.0.0" });
  await client.connect(transport);
  try {
    await body(client);
  } finally {
    await client.close();
  }
}

const checks = {
  async stdio() {
    const transport = new StdioClientTransport({
      command,
      args: ["--simulator"],
      env: { ...cleanEnv, ...fastSim },
      stderr: "inherit",
    });
    await withClient(transport, exercise);
  },
  async streamableHttp() {
    const port = await freePort();
    const server = spawn(command, ["--simulator", "--transport", "streamable-http", "--port", String(port)], {
      env: { ...cleanEnv, ...fastSim, MJ_MCP_TOKEN: "interop-token" },
      stdio: ["ignore", "inherit", "inherit"],
    });
    try {
      const url = `http://127.0.0.1:${port}`;
      await waitHealthy(url);
      const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp`), {
        requestInit: { headers: { Authorization: "Bearer interop-token" } },
      });
      await withClient(transport, exercise);
    } finally {
      server.kill("SIGTERM");
    }
  },
};

let passed = 0;
let failed = 0;
for (const [name, check] of Object.entries(checks)) {
  try {
    await check();
    passed += 1;
    console.log(`ok - typescript sdk client runs MCP tasks over ${name}`);
  } catch (error) {
    failed += 1;
    console.log(`not ok - typescript sdk client runs MCP tasks over ${name}: ${error?.stack || error}`);
  }
}
console.log(`interop tasks: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

// Interop check: the official TypeScript MCP SDK client drives the installed `mj-mcp --simulator`
// over stdio and over Streamable HTTP: list tools, imagine with progress, read a task resource.
// Usage: MJ_MCP_COMMAND=/path/to/mj-mcp node client.mjs
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const command = process.env.MJ_MCP_COMMAND || "mj-mcp";
const fastSim = { MJ_SIM_JOB_SECONDS: "1", MJ_POLL_INTERVAL: "0.2", MJ_OUTPUT_DIR: "off" };
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MJ_")));

async function exercise(client) {
  const { tools } = await client.listTools();
  assert.equal(tools.length, 20);
  const imagine = tools.find((t) => t.name === "imagine");
  assert.deepEqual(imagine.inputSchema.required, ["prompt"]);
  assert.ok("base64Array" in imagine.inputSchema.properties);

  const progress = [];
  const result = await client.callTool(
    { name: "imagine", arguments: { prompt: "a paper boat on a pond" } },
    undefined,
    { onprogress: (p) => progress.push(p), resetTimeoutOnProgress: true, timeout: 60_000 },
  );
  assert.notEqual(result.isError, true, JSON.stringify(result.content));
  assert.equal(result.structuredContent.status, "SUCCESS");
  assert.ok(progress.length >= 2, `progress notifications: ${progress.length}`);
  assert.equal(progress.at(-1).progress, 100);
  assert.ok(progress.every((p) => p.total === 100));
  assert.ok(result.content.some((c) => c.type === "image"));
  // No resource_link items (frameworks turn them into file URLs): the text names the task's URI.
  assert.ok(!result.content.some((c) => c.type === "resource_link"));
  const uri = `mj://tasks/${result.structuredContent.id}`;
  assert.ok(result.content.some((c) => c.type === "text" && c.text.includes(uri)));

  const resource = await client.readResource({ uri });
  assert.equal(JSON.parse(resource.contents[0].text).id, result.structuredContent.id);

  const bad = await client.callTool({ name: "action", arguments: { taskId: result.structuredContent.id, customId: "U9" } });
  assert.equal(bad.isError, true);
  assert.match(bad.content[0].text, /Available:/);
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

const checks = {
  async stdio() {
    const transport = new StdioClientTransport({
      command,
      args: ["--simulator"],
      env: { ...cleanEnv, ...fastSim },
      stderr: "inherit",
    });
    const client = new Client({ name: "interop-ts", version: "1.0.0" });
    await client.connect(transport);
    try {
      await exercise(client);
    } finally {
      await client.close();
    }
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
      const client = new Client({ name: "interop-ts", version: "1.0.0" });
      await client.connect(transport);
      try {
        await exercise(client);
      } finally {
        await client.close();
      }
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
    console.log(`ok - typescript sdk client over ${name}`);
  } catch (error) {
    failed += 1;
    console.log(`not ok - typescript sdk client over ${name}: ${error?.stack || error}`);
  }
}
console.log(`interop: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

"""A stateful fake of the midjourney-proxy HTTP API, as an ASGI app that renders real images.

Why it exists: the client, the waiting loop and the MCP tools are tested against this very app
(in-process through `Simulator.transport()`), `mj-mcp --simulator` runs the server on it, and
`mj-mcp simulate` serves it over HTTP so anybody can try the product without a key.

The layers mirror the real topology, outermost first:

- `app` — `Simulator`, the ASGI app: faults, the request log, the speed-mode prefix, the files
  served without auth, then whichever server the client talks to.
- `faults` — a broken network or gateway in front of everything (`Fault`, `Simulator.inject`).
- `profiles` — the four upstreams it plays, `Simulator(upstream="plus" | "new-api" | "trueai" |
  "novicezk")` (`PROFILES`): each one's routes, 404 shape, speed-mode prefixes, account
  selection, banned prompts, task view and body limit, and its preset `Quirks`.
- `newapi` — new-api in front of the upstream (`Quirks.new_api`; `Simulator(upstream="new-api",
  channel="plus" | "trueai" | "novicezk")` names the proxy behind it): its own routes, checks and
  records, forwarding to the upstream and rewriting the replies; `distributor` is its
  `Distribute` middleware (unmappable buttons, token model limits, no channel).
- `auth` — the key check of whichever server is in front, in each dialect (`Quirks.auth`).
- `upstream` — the TA / PLUS server: its route table (the `mj_mcp.endpoints` paths plus the TA
  aliases) and the handlers behind it, in `submits`, `actions` (buttons, MODAL, NZ changes) and
  `reads`, on the common ground of `handlers` and `wire` (verbatim messages, reply shapes,
  lenient request parsing).
- `core` — the task store and the clock-derived job lifecycle; `buttons` (what a task offers
  and what a customId does), `prompts` (what Midjourney makes of a prompt) and `views` (the
  Task JSON) describe the tasks it holds.
- `media` and `render` — uploads and the served pictures, drawn with Pillow on first request.
- `standalone` — the app over HTTP with its callback sender (`run_simulator`).

Faithful by default, every dialect on a switch: the default profile "plus" follows the TA / PLUS
flavour documented in docs/upstream-api.md (codes, verbatim messages, HTTP 404 with a code-3
body, 204 for an unknown fetch, Spring-style 400 for unreadable JSON); the other profiles play
the real software as the upstream audit of issue 13 read it from source, and `Quirks` switches single
dialect points on any profile. Each task records the speed mode it runs in
(`SimTask.effective_mode`). Time comes from one `mj_mcp.clock.Clock` (the wall clock by default, a
`ManualClock` or a test's clock otherwise), so tests advance time instead of sleeping.
"""

from mj_mcp.simulator.app import Simulator, SimulatorOptions
from mj_mcp.simulator.clocks import ManualClock, WallClock
from mj_mcp.simulator.core import FAIL_REASON, SimTask
from mj_mcp.simulator.faults import Fault, FaultKind
from mj_mcp.simulator.profiles import CHANNELS, DEFAULT_MODE, PROFILES, ChannelName, Profile, ProfileName
from mj_mcp.simulator.quirks import DEFAULT_BANNED_WORDS, FAILING_MARKER, Quirks
from mj_mcp.simulator.standalone import CALLBACK_TICK, StandaloneApp, run_simulator
from mj_mcp.simulator.views import INSTANCE_ID

__all__ = [
    "CALLBACK_TICK",
    "CHANNELS",
    "DEFAULT_BANNED_WORDS",
    "DEFAULT_MODE",
    "FAILING_MARKER",
    "FAIL_REASON",
    "INSTANCE_ID",
    "PROFILES",
    "ChannelName",
    "Fault",
    "FaultKind",
    "ManualClock",
    "Profile",
    "ProfileName",
    "Quirks",
    "SimTask",
    "Simulator",
    "SimulatorOptions",
    "StandaloneApp",
    "WallClock",
    "run_simulator",
]

import type { Scenario } from "../lib/types.ts"
import { authFlood } from "./auth-flood.ts"
import { churn } from "./churn.ts"
import { idle } from "./idle.ts"
import { largePackets } from "./large-packets.ts"
import { latency } from "./latency.ts"
import { scaleOut } from "./scale-out.ts"
import { sessions, sessionsSqlite } from "./sessions.ts"
import { slowConsumer } from "./slow-consumer.ts"
import { fanInQos0, fanInQos0High, fanInQos1, fanInQos1Sqlite, fanOutQos0, fanOutQos1 } from "./throughput.ts"

/** Every scenario, in the order they run. */
export const SCENARIOS: ReadonlyArray<Scenario> = [
  fanInQos0,
  fanInQos1,
  fanInQos1Sqlite,
  fanInQos0High,
  fanOutQos0,
  fanOutQos1,
  latency,
  idle,
  churn,
  sessions,
  sessionsSqlite,
  largePackets,
  slowConsumer,
  authFlood,
  scaleOut
]

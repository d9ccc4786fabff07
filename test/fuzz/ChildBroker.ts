/**
 * The broker under test in a child process (see BrokerChild.ts): the same broker, config and log
 * capture as `startTestBroker`, measured from outside its event loop.
 */
import { spawn } from "node:child_process"
import { createInterface } from "node:readline"
import type { TestBroker } from "../support/TestBroker.ts"

/** What the campaign needs of a broker, in process or not. */
export type FuzzBroker = Pick<TestBroker, "port" | "url" | "logs" | "stop">

/** Starts the broker with `config` in a child process run by the same Node; resolves once it listens. */
export const startChildBroker = (config: object): Promise<FuzzBroker> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [new URL("./BrokerChild.ts", import.meta.url).pathname, JSON.stringify(config)], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    const logs: Array<string> = []
    const exited = new Promise<void>((done) => child.once("exit", () => done()))
    child.once("exit", (code) => reject(new Error(`broker child exited before listening (code ${code})`)))
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (line.startsWith("LOG ")) logs.push(line.slice(4))
      else if (line.startsWith("PORT ")) {
        const port = Number(line.slice(5))
        resolve({
          port,
          url: `mqtt://127.0.0.1:${port}`,
          logs,
          stop: async () => {
            child.kill("SIGTERM")
            const killer = setTimeout(() => child.kill("SIGKILL"), 10_000)
            await exited
            clearTimeout(killer)
          }
        })
      }
    })
  })

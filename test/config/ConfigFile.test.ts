import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Result } from "effect"
import * as fc from "fast-check"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as BrokerConfig from "../../src/config/BrokerConfig.ts"
import * as ConfigFile from "../../src/config/ConfigFile.ts"
import * as Load from "../../src/config/Load.ts"
import * as PrintConfig from "../../src/config/PrintConfig.ts"
import * as Settings from "../../src/config/Settings.ts"
import type { FlagValues } from "../support/LoadConfig.ts"

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))
const keyFile = fixture("tls-key.pem")
const certFile = fixture("tls-cert.pem")

/** The parsed file, or the one line it is refused with. */
const parse = (path: string, text: string): ConfigFile.ConfigFile | string => {
  const result = ConfigFile.parse(path, text)
  return Result.isSuccess(result) ? result.success : result.failure.message
}

/** The config flags, env and the file `text` (named `path`) describe, or the one line it is refused with. */
const load = (path: string, text: string, flags: FlagValues = {}, env: Record<string, string> = {}): BrokerConfig.BrokerConfig | string => {
  const file = parse(path, text)
  if (typeof file === "string") return file
  const exit = Effect.runSyncExit(Load.load([Settings.fromFlags(flags), Settings.fromEnv(env), file.source]))
  if (Exit.isSuccess(exit)) return exit.value
  const error = Cause.squash(exit.cause) as Error
  expect(error.name).toBe("ConfigError")
  return error.message
}

describe("ConfigFile: keys and values", () => {
  it("YAML and JSON files with the same keys give the same config, values typed or as text", () => {
    const yaml = load("b.yaml", "# the broker\nhost: 127.0.0.1\nport: 1884\nmaxPacketSize: '1048576'\nnoRetain: yes\nqueueQos0: true\nmaxConnectRate: 5\n")
    const json = load("b.json", JSON.stringify({ host: "127.0.0.1", port: "1884", maxPacketSize: 1048576, noRetain: "yes", queueQos0: true, maxConnectRate: 5 }))
    expect(yaml).toEqual({
      ...BrokerConfig.defaults,
      host: "127.0.0.1",
      port: 1884,
      maxPacketSize: 1048576,
      retainAvailable: false,
      queueQos0: true,
      maxConnectsPerSecond: 5
    })
    expect(json).toEqual(yaml)
  })

  it("precedence: flag > env > file > default, key by key", () => {
    const text = "port: 1001\nmaxQueuedMessages: 7\nmaxInflightMessages: 3\nmaximumQos: 1\n"
    const config = load("b.yaml", text, { port: "3001" }, { MQTT_PORT: "2001", MQTT_MAX_QUEUED_MESSAGES: "8" })
    expect(config).toMatchObject({ port: 3001, maxQueuedMessages: 8, maxInflightMessages: 3, maximumQos: 1, receiveMaximum: BrokerConfig.defaults.receiveMaximum })
    // an empty env variable is unset, so the file's value stands
    expect(load("b.yaml", text, {}, { MQTT_PORT: "" })).toMatchObject({ port: 1001 })
  })

  it("an empty file, one with only comments, and a null value set nothing", () => {
    expect(load("b.yaml", "")).toEqual(BrokerConfig.defaults)
    expect(load("b.yaml", "# nothing yet\n")).toEqual(BrokerConfig.defaults)
    expect(load("b.yaml", "port:\nwsPort: ~\n")).toEqual(BrokerConfig.defaults)
  })

  it("an unknown key is refused, naming the key and the file, with the key that was probably meant", () => {
    expect(load("/etc/b.yaml", "maxPaketSize: 5\n")).toBe("maxPaketSize in /etc/b.yaml is not a configuration key (did you mean maxPacketSize?)")
    expect(load("b.yaml", "max-packet-size: 5\n")).toBe("max-packet-size in b.yaml is not a configuration key (did you mean maxPacketSize?)")
    // the internal name of --max-connect-rate points to the file key
    expect(load("b.json", "{\"maxConnectsPerSecond\": 5}")).toBe("maxConnectsPerSecond in b.json is not a configuration key (did you mean maxConnectRate?)")
    expect(load("b.yaml", "config: other.yaml\n")).toBe("config in b.yaml is not a configuration key (see --help; file keys are the flags in camelCase)")
  })

  it("a value of the wrong type or out of range is refused through the key's own schema", () => {
    expect(load("b.yaml", "port: abc\n")).toBe("port: abc in b.yaml is not a port (0-65535)")
    expect(load("b.yaml", "port: 70000\n")).toBe("port: 70000 in b.yaml is not a port (0-65535)")
    expect(load("b.yaml", "port: 1.5\n")).toBe("port: 1.5 in b.yaml is not a port (0-65535)")
    expect(load("b.json", "{\"maxPacketSize\": [1]}")).toBe("maxPacketSize: [1] in b.json is not a packet size in bytes (1-268435455)")
    expect(load("b.json", "{\"noRetain\": 3}")).toBe("noRetain: 3 in b.json is not a boolean (true/false, yes/no, on/off, 1/0)")
    expect(load("b.json", "{\"host\": {\"a\": 1}}")).toBe("host: {\"a\":1} in b.json is not a host name or address")
    expect(load("b.yaml", "host: ''\n")).toBe("host: \"\" in b.yaml is not a host name or address")    // the file is checked whole, also where a flag or env overrides it today
    expect(load("b.yaml", "port: abc\n", { port: "1883" }, { MQTT_PORT: "1884" })).toBe("port: abc in b.yaml is not a port (0-65535)")
  })

  it("relations between keys name the file's key when the file gave it", () => {
    expect(load("b.yaml", "wsPort: 1883\n")).toBe("wsPort: 1883 in b.yaml is the port of --port (MQTT_PORT) too: each listener needs its own")
    expect(load("b.yaml", "tlsPort: 8883\n")).toBe("tlsPort in b.yaml needs --tls-key (MQTT_TLS_KEY) and --tls-cert (MQTT_TLS_CERT)")
    expect(load("b.yaml", `tlsPort: 0\ntlsKey: ${keyFile}\n`, { tlsCert: certFile })).toMatchObject({ tls: { port: 0 } })
  })

  it("a file that is not YAML, not JSON, not a mapping, or not named .yaml/.yml/.json is refused", () => {
    expect(load("b.yaml", "port: 1\nport: 2\n")).toBe("b.yaml is not valid YAML: Duplicate key 'port' at line 2")
    expect(load("b.json", "{\"port\": 1,}")).toMatch(/^b\.json is not valid JSON: /)
    expect(load("b.yml", "- port: 1\n")).toBe("b.yml is not a mapping of keys to values")
    expect(load("b.json", "42")).toBe("b.json is not a mapping of keys to values")
    expect(load("b.toml", "port = 1\n")).toBe("b.toml is neither YAML nor JSON: name it .yaml, .yml or .json")
  })

  it("an unreadable file is refused naming how it was given (--config or MQTT_CONFIG)", () => {
    const dir = mkdtempSync(join(tmpdir(), "config-file-"))
    const message = (effect: Effect.Effect<unknown, unknown>) => {
      const exit = Effect.runSyncExit(effect)
      return Exit.isFailure(exit) ? (Cause.squash(exit.cause) as Error).message : "loaded"
    }
    expect(message(ConfigFile.fromCommandLine(join(dir, "missing.yaml"), {}))).toBe(`--config ${join(dir, "missing.yaml")} cannot be read: no such file`)
    expect(message(ConfigFile.fromCommandLine(undefined, { MQTT_CONFIG: dir }))).toBe(`MQTT_CONFIG=${dir} cannot be read: is a directory`)
    writeFileSync(join(dir, "b.yaml"), "port: 1\n")
    expect(message(ConfigFile.fromCommandLine(undefined, { MQTT_CONFIG: join(dir, "b.yaml") }))).toBe("loaded")
    expect(Effect.runSync(ConfigFile.fromCommandLine(undefined, { MQTT_CONFIG: "" }))).toBeUndefined()
  })

  it("every settings key has a file key: its flag in camelCase, distinct from the others", () => {
    const fileKeys = Object.values(Settings.settings).map((setting) => ConfigFile.fileKey(setting as Settings.Setting<unknown>))
    expect(new Set(fileKeys).size).toBe(fileKeys.length)
    for (const [index, setting] of Object.values(Settings.settings).entries()) {
      expect(fileKeys[index]!.replace(/[A-Z0-9]/g, (c) => `-${c.toLowerCase()}`).replace("qos-0", "qos0")).toBe(setting.flag)
    }
  })
})

describe("ConfigFile: listeners", () => {
  const several = [
    "host: 127.0.0.1",
    "listeners:",
    "  - transport: tcp",
    "    port: 1883",
    "  - transport: tcp",
    "    port: 1884",
    "    host: 10.0.0.1",
    "  - { transport: ws, port: 8080 }",
    "  - transport: tls",
    "    port: 8883",
    `    key: ${keyFile}`,
    `    cert: ${certFile}`,
    "  - transport: tls",
    "    port: 8884",
    `    key: ${keyFile}`,
    `    cert: ${certFile}`
  ].join("\n")

  it("several listeners of one transport, each on its own host or the host key's", () => {
    const config = load("b.yaml", several)
    if (typeof config === "string") throw new Error(config)
    expect(BrokerConfig.listenersOf(config).map(({ transport, host, port }) => `${transport}://${host}:${port}`)).toEqual([
      "tcp://127.0.0.1:1883",
      "tcp://10.0.0.1:1884",
      "ws://127.0.0.1:8080",
      "tls://127.0.0.1:8883",
      "tls://127.0.0.1:8884"
    ])
    expect(config.listeners?.[3]).toMatchObject({ key: expect.stringContaining("PRIVATE KEY"), cert: expect.stringContaining("CERTIFICATE") })
    // connections read the client-certificate settings from `tls`: the first TLS listener's
    expect(config.tls).toMatchObject({ port: 8883 })
  })

  it("the same listeners in JSON", () => {
    const json = JSON.stringify({
      host: "127.0.0.1",
      listeners: [{ transport: "tcp", port: 1883 }, { transport: "tcp", port: 1884, host: "10.0.0.1" }, { transport: "ws", port: 8080 }, {
        transport: "tls",
        port: 8883,
        key: keyFile,
        cert: certFile
      }, { transport: "tls", port: 8884, key: keyFile, cert: certFile }]
    })
    expect(load("b.json", json)).toEqual(load("b.yaml", several))
  })

  it("without a TCP listener the broker listens on the listed ones only", () => {
    const config = load("b.yaml", "listeners:\n  - { transport: ws, port: 8080 }\n")
    if (typeof config === "string") throw new Error(config)
    expect(BrokerConfig.listenersOf(config)).toEqual([{ transport: "ws", port: 8080, host: "0.0.0.0" }])
  })

  it("a list and a port key from any source are refused together", () => {
    const text = "listeners:\n  - { transport: tcp, port: 1883 }\n"
    expect(load("b.yaml", text, { port: "1884" })).toBe(
      "--port cannot be combined with listeners in b.yaml: the list names every listener, each TLS one with its key and cert"
    )
    expect(load("b.yaml", text, {}, { MQTT_WS_PORT: "8080" })).toMatch(/^MQTT_WS_PORT cannot be combined with listeners in b\.yaml/)
    expect(load("b.yaml", `${text}tlsKey: ${keyFile}\n`)).toMatch(/^tlsKey in b\.yaml cannot be combined with listeners in b\.yaml/)
  })

  it("one port twice on one address is refused; on different addresses, or port 0, it is fine", () => {
    expect(load("b.yaml", "listeners:\n  - { transport: tcp, port: 1883 }\n  - { transport: ws, port: 1883 }\n")).toBe(
      "listeners[1] in b.yaml has port 1883 of listeners[0] in b.yaml too: each listener needs its own"
    )
    // 0.0.0.0 (the default host) takes the port on every address
    expect(load("b.yaml", "listeners:\n  - { transport: tcp, port: 1883 }\n  - { transport: tcp, port: 1883, host: 127.0.0.1 }\n")).toMatch(
      /^listeners\[1\] in b\.yaml has port 1883 of listeners\[0\]/
    )
    expect(load("b.yaml", "listeners:\n  - { transport: tcp, port: 1883, host: 127.0.0.1 }\n  - { transport: tcp, port: 1883, host: 127.0.0.2 }\n"))
      .toMatchObject({ listeners: [{ port: 1883 }, { port: 1883 }] })
    expect(load("b.yaml", "listeners:\n  - { transport: tcp, port: 0 }\n  - { transport: ws, port: 0 }\n")).toMatchObject({
      listeners: [{ port: 0 }, { port: 0 }]
    })
  })

  it("a listener that is not one is refused, naming its place in the list", () => {
    const refused: ReadonlyArray<[string, string]> = [
      ["listeners: []", "listeners in b.yaml is empty: list at least one listener"],
      ["listeners: 1883", "listeners: 1883 in b.yaml is not a list of listeners"],
      ["listeners:\n  - 1883", "listeners[0]: 1883 in b.yaml is not a listener (transport, port, host, key, cert)"],
      ["listeners:\n  - { transport: udp, port: 1 }", "listeners[0].transport: udp in b.yaml is not a transport (tcp, tls, ws)"],
      ["listeners:\n  - { port: 1 }", "listeners[0].transport: null in b.yaml is not a transport (tcp, tls, ws)"],
      ["listeners:\n  - { transport: tcp }", "listeners[0] in b.yaml has no port"],
      ["listeners:\n  - { transport: tcp, port: 1 }\n  - { transport: tcp, port: -1 }", "listeners[1].port: -1 in b.yaml is not a port (0-65535)"],
      ["listeners:\n  - { transport: tcp, port: 1, prot: 2 }", "listeners[0].prot in b.yaml is not a listener field (transport, port, host, key, cert)"],
      ["listeners:\n  - { transport: tcp, port: 1, host: '' }", "listeners[0].host: \"\" in b.yaml is not a host name or address"],
      [`listeners:\n  - { transport: tls, port: 1, key: ${keyFile} }`, "listeners[0] in b.yaml is a tls listener without cert: name its PEM key and cert files"],
      [`listeners:\n  - { transport: tcp, port: 1, key: ${keyFile} }`, "listeners[0].key in b.yaml is for tls listeners only"],
      [
        `listeners:\n  - { transport: tls, port: 1, key: /nonexistent/key.pem, cert: ${certFile} }`,
        "listeners[0].key: /nonexistent/key.pem in b.yaml cannot be read: no such file"
      ]
    ]
    for (const [text, message] of refused) expect(load("b.yaml", text), text).toBe(message)
  })

  it("client-certificate keys apply to the listed TLS listeners, and need one", () => {
    const tls = `listeners:\n  - { transport: tls, port: 8883, key: ${keyFile}, cert: ${certFile} }\n  - { transport: tls, port: 8884, key: ${keyFile}, cert: ${certFile} }\n`
    const config = load("b.yaml", `${tls}tlsCa: ${certFile}\nrequireCertificate: true\n`)
    if (typeof config === "string") throw new Error(config)
    for (const listener of config.listeners ?? []) expect(listener).toMatchObject({ requireCertificate: true, ca: expect.stringContaining("CERTIFICATE") })
    expect(load("b.yaml", `listeners:\n  - { transport: tcp, port: 1 }\ntlsCa: ${certFile}\n`)).toBe(
      `tlsCa in b.yaml is set but listeners in b.yaml has no tls listener: client certificates are checked by the TLS listener`
    )
  })
})

describe("README", () => {
  it("its config file example is a valid config file with the listeners it describes", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8")
    const start = readme.indexOf("```yaml\n# /etc/effect-mqtt-broker/broker.yaml\n")
    expect(start).not.toBe(-1)
    const text = readme.slice(readme.indexOf("\n", start) + 1, readme.indexOf("```", start + 3))
    const file = Result.getOrThrow(ConfigFile.parse("broker.yaml", text))
    // decoded, not loaded: the example's TLS and password files are not on this machine
    const decoded = Result.getOrThrow(Settings.decode([file.source]))
    expect(decoded.values).toMatchObject({ maxPacketSize: 1048576, passwordFile: "/etc/effect-mqtt-broker/passwd" })
    expect(file.source.listed?.entries.map(({ transport, port }) => `${transport}:${port}`)).toEqual(["tcp:1883", "tcp:1884", "ws:8080", "tls:8883"])
  })
})

describe("--print-config", () => {
  /** The merged configuration printed as `format`, then loaded back from that text alone. */
  const roundTrip = (flags: FlagValues, text: string | undefined, format: ConfigFile.Format) => {
    const file = text === undefined ? undefined : ConfigFile.parse(`in.${format}`, text).pipe(Result.getOrThrow)
    const sources = [Settings.fromFlags(flags), ...(file === undefined ? [] : [file.source])]
    const config = Effect.runSync(Load.load(sources))
    const anonymous = Effect.runSync(Load.authentication(sources)).anonymous
    const decoded = Result.getOrThrow(Settings.decode(sources))
    const printed = PrintConfig.render(PrintConfig.document(decoded, config, anonymous), format)
    return { config, printed, reloaded: load(`out.${format}`, printed) }
  }

  it("prints every key as the broker uses it, listeners as listed, in YAML", () => {
    const { printed } = roundTrip({ maxOutboxBytes: "1000", host: "::1" }, "listeners:\n  - { transport: tcp, port: 0 }\n  - { transport: ws, port: 0, host: 127.0.0.1 }\n", "yaml")
    expect(printed).toContain("host: ::1\nlisteners:\n  - transport: tcp\n    port: 0\n  - transport: ws\n    port: 0\n    host: 127.0.0.1\n")
    // a default that follows a smaller cap is printed as it is used
    expect(printed).toContain("\nmaxOutboxBytes: 1000\noutboxHighWaterBytes: 1000\n")
    expect(printed).toContain("\nmaxConnectRate: 0\n")
    expect(printed).toContain("\nallowAnonymous: true\n")
    expect(printed).not.toMatch(/^port:/m)
  })

  it("printing then loading the printed file alone gives the same BrokerConfig (YAML and JSON)", () => {
    fc.assert(
      fc.property(
        fc.record({
          host: fc.option(fc.string({ minLength: 1, maxLength: 12 }), { nil: undefined }),
          port: fc.option(fc.integer({ min: 0, max: 65_535 }).map(String), { nil: undefined }),
          maxOutboxBytes: fc.option(fc.integer({ min: 1, max: 10_000_000 }).map(String), { nil: undefined }),
          slowConsumerMs: fc.option(fc.integer({ min: 1, max: 100_000 }).map(String), { nil: undefined }),
          noRetain: fc.option(fc.boolean(), { nil: undefined })
        }, { requiredKeys: [] }),
        fc.constantFrom<ConfigFile.Format>("yaml", "json"),
        (flags, format) => {
          const { config, reloaded } = roundTrip(flags as FlagValues, undefined, format)
          expect(reloaded).toEqual(config)
        }
      ),
      { numRuns: 200 }
    )
  })
})

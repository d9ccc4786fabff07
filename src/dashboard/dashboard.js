// The live page: connects back to the broker over MQTT-over-WebSocket with mqtt.js' browser
// build (served beside this file), reads the broker's figures from its $SYS topics and lets the
// operator watch and publish messages. Plain browser JavaScript: no framework, no build step.
"use strict"

const MAX_ROWS = 200
const CHART_POINTS = 120

const $ = (id) => document.getElementById(id)
const status = (state, text) => {
  $("status").dataset.state = state
  $("status").textContent = text
}

/** Counter samples turned into per-second rates between two $SYS updates. */
const rates = { in: [], out: [] }
const last = {}
const rateOf = (key, value) => {
  const now = performance.now()
  const previous = last[key]
  last[key] = { value, at: now }
  if (previous === undefined || now <= previous.at || value < previous.value) return undefined
  return ((value - previous.value) * 1000) / (now - previous.at)
}

const drawChart = () => {
  const canvas = $("chart")
  const context = canvas.getContext("2d")
  const { width, height } = canvas
  context.clearRect(0, 0, width, height)
  const top = Math.max(1, ...rates.in, ...rates.out)
  context.fillStyle = "#4a5468"
  context.font = "12px system-ui"
  context.fillText(`${Math.round(top)} / s`, 4, 12)
  for (const [series, colour] of [[rates.in, "#2f6fdb"], [rates.out, "#e07b1a"]]) {
    context.strokeStyle = colour
    context.lineWidth = 2
    context.beginPath()
    // the newest point at the right edge, older ones to its left
    series.forEach((value, i) => {
      const x = width - ((series.length - 1 - i) / (CHART_POINTS - 1)) * width
      const y = height - 2 - (value / top) * (height - 18)
      if (i === 0) context.moveTo(x, y)
      else context.lineTo(x, y)
    })
    context.stroke()
  }
}

const pushRate = (series, value) => {
  if (value === undefined) return
  series.push(value)
  if (series.length > CHART_POINTS) series.shift()
  drawChart()
}

/** What each $SYS topic updates on the page. */
const sysHandlers = {
  "$SYS/broker/version": (text) => void ($("version").textContent = text),
  "$SYS/broker/uptime": (text) => void ($("uptime").textContent = text),
  "$SYS/broker/clients/connected": (text) => void ($("clients").textContent = text),
  "$SYS/broker/subscriptions/count": (text) => void ($("subscriptions").textContent = text),
  "$SYS/broker/retained messages/count": (text) => void ($("retained").textContent = text),
  "$SYS/broker/publish/messages/dropped": (text) => void ($("dropped").textContent = text),
  "$SYS/broker/publish/messages/received": (text) => {
    const rate = rateOf("in", Number(text))
    if (rate !== undefined) $("rate-in").textContent = rate.toFixed(1)
    pushRate(rates.in, rate)
  },
  "$SYS/broker/publish/messages/sent": (text) => {
    const rate = rateOf("out", Number(text))
    if (rate !== undefined) $("rate-out").textContent = rate.toFixed(1)
    pushRate(rates.out, rate)
  }
}

const addRow = (topic, payload) => {
  const row = document.createElement("tr")
  for (const [text, kind] of [[new Date().toLocaleTimeString(), "time"], [topic, "topic"], [payload, "payload"]]) {
    const cell = document.createElement("td")
    cell.className = kind
    cell.textContent = text
    row.append(cell)
  }
  const body = $("messages")
  body.prepend(row)
  while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1)
}

const start = async () => {
  const response = await fetch("config.json")
  const config = await response.json()
  if (config.webSocketPort === undefined) {
    status("offline", "the broker has no WebSocket listener (start it with --ws-port)")
    return
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws"
  const client = mqtt.connect(`${scheme}://${location.hostname}:${config.webSocketPort}`, {
    clientId: `dashboard-${Math.random().toString(16).slice(2, 10)}`,
    reconnectPeriod: 2000
  })
  let filter = undefined
  client.on("connect", () => {
    status("connected", "connected")
    client.subscribe("$SYS/broker/#")
    if (filter !== undefined) client.subscribe(filter)
  })
  client.on("close", () => status("offline", "offline"))
  client.on("error", (error) => status("offline", String(error.message ?? error)))
  client.on("message", (topic, payload) => {
    const text = new TextDecoder().decode(payload)
    if (topic.startsWith("$SYS/")) sysHandlers[topic]?.(text)
    else addRow(topic, text)
  })
  $("subscribe").addEventListener("submit", (event) => {
    event.preventDefault()
    const next = $("filter").value
    if (filter !== undefined) client.unsubscribe(filter)
    filter = next
    client.subscribe(next, (error) => {
      $("subscribed").textContent = error ? `refused: ${error.message}` : `subscribed to ${next}`
    })
  })
  $("publish").addEventListener("submit", (event) => {
    event.preventDefault()
    client.publish($("publish-topic").value, $("publish-payload").value, { retain: $("publish-retain").checked }, (error) => {
      if (error) status("offline", `publish failed: ${error.message}`)
    })
  })
}

drawChart()
start().catch((error) => status("offline", String(error)))

# effect-mqtt-broker in a container.
#
#   docker build -t effect-mqtt-broker .
#   docker run --rm -p 1883:1883 effect-mqtt-broker                 # defaults
#   docker run --rm -p 1884:1884 effect-mqtt-broker --port 1884     # flags go after the image
#   docker run --rm -p 1883:1883 -e MQTT_MAX_PACKET_SIZE=1048576 effect-mqtt-broker
#
# The broker runs from its TypeScript sources with Node's built-in type stripping, exactly as
# `npm start` runs it (`exec node src/launch.js`): no build step. Node 24 comes with the image,
# so only the runtime dependencies are installed (the `node` devDependency that pins Node 24
# for `npm start` on a developer machine is not needed here).
FROM node:24-slim

# tini as PID 1: the kernel drops signals a PID 1 has no handler for, and the broker installs
# its SIGTERM/SIGINT handlers only once its modules are loaded; tini forwards the signal to it.
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV NODE_ENV=production

COPY package.json package-lock.json ./
# no install scripts: no runtime dependency needs one
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

COPY src ./src

# the unprivileged user of the node image; MQTT ports are above 1024. TLS files mounted into
# the container must be readable by it (uid 1000).
USER node

# TCP (MQTT_PORT), conventional TLS (MQTT_TLS_PORT) and WebSocket (MQTT_WS_PORT) ports; TLS and
# WebSocket listen only when their port is set.
EXPOSE 1883 8883 8080

# `docker stop` sends SIGTERM, waits 10 s, then SIGKILL; the broker closes every connection and
# exits 0 well within that (it gives itself 5 s, then exits regardless).
STOPSIGNAL SIGTERM

# exec form: no shell in between, so SIGTERM reaches tini and from it the broker; CMD holds the
# flags, so `docker run effect-mqtt-broker --port 1884 …` replaces them.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "src/launch.js"]
CMD []

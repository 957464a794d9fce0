# The wirelane image, for anyone with a container registry (README, "Install"):
#   docker build --build-arg VERSION=0.1.0 -t "$(node scripts/build-image.mjs --name)" .
# scripts/build-image.mjs builds the same image where no registry is reachable, from Debian's archive
# and npm alone; it reads the two ARGs below. Both builds install image/packages.txt, put the project
# in /opt/wirelane and run image/finish-rootfs.sh. Name and tag: package.json's name and version.
ARG DEBIAN_SUITE=bookworm
# Debian bookworm's nodejs is 18, older than package.json's engines.node: the official Node.js image
# of the same Debian release brings node (and, in the build stage, its headers for the addon).
ARG NODE_MAJOR=20

FROM node:${NODE_MAJOR}-${DEBIAN_SUITE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev make g++ python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# As on a development machine: the libbpf addon, the BPF objects (CO-RE, compiled against the build
# host's /sys/kernel/btf/vmlinux: the build host's kernel needs BTF) and dist/. The setup script also
# installs the commands the tests use; they stay in this stage. The production dependencies are
# installed as scripts/build-image.mjs installs them.
RUN node scripts/setup.mjs \
 && rm -rf node_modules dist/.tsbuildinfo \
 && npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM debian:${DEBIAN_SUITE}-slim
COPY image/packages.txt /tmp/packages.txt
RUN apt-get update \
 && sed 's/#.*//' /tmp/packages.txt | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/packages.txt
COPY --from=build /usr/local/bin/node /usr/local/bin/node
COPY --from=build /src/package.json /src/package-lock.json /opt/wirelane/
COPY --from=build /src/bin /opt/wirelane/bin
COPY --from=build /src/dist /opt/wirelane/dist
COPY --from=build /src/node_modules /opt/wirelane/node_modules
COPY --from=build /src/build/Release/wirelane_bpf.node /opt/wirelane/build/Release/
COPY --from=build /src/build/bpf/*.bpf.o /opt/wirelane/build/bpf/
COPY image/iptables-wrapper /usr/sbin/iptables-wrapper
COPY image/finish-rootfs.sh /tmp/finish-rootfs.sh
RUN sh /tmp/finish-rootfs.sh && rm /tmp/finish-rootfs.sh
ARG VERSION
LABEL org.opencontainers.image.title=wirelane \
      org.opencontainers.image.version=${VERSION} \
      org.opencontainers.image.licenses=Apache-2.0
ENTRYPOINT ["/usr/local/bin/wirelane"]
CMD ["--help"]

# keyfront operator image. Build: docker build -t keyfront .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin keyfront

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/keyfront /usr/local/bin/keyfront
# Numeric, so the kubelet can verify runAsNonRoot (a user name it cannot check, and refuses).
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/keyfront"]

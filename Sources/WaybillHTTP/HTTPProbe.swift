import Foundation
import WaybillWorker

#if canImport(Glibc)
import Glibc
#endif

/// One `GET` over plain HTTP/1.1, for `waybill health` (the image's HEALTHCHECK) and the endpoint tests: no HTTP
/// library, so the runtime image needs neither curl nor libcurl.
///
/// It reads the whole answer of a small endpoint (`/readyz`, `/metrics`); it is not a general client (no redirects,
/// no chunked bodies, no TLS).
public enum HTTPProbe {
    /// The status and body of `GET path` at `address`.
    public struct Answer: Sendable {
        public var status: Int
        public var body: String
    }

    /// Why a probe got no answer: the one-line message names the address and what failed.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// ``get(_:at:timeout:)`` on a thread of its own, for async callers: the probe blocks in `poll`, which must not
    /// hold one of the few threads Swift concurrency runs tasks on (the server it asks may need them to answer).
    public static func fetch(
        _ path: String, at address: HTTPAddress, timeout: Duration = .seconds(5)
    ) async throws
        -> Answer
    {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { () throws(Failure) in try get(path, at: address, timeout: timeout) })
            }
        }
    }

    /// Sends `GET path` to `address` and waits up to `timeout` for the whole answer; blocks the calling thread.
    public static func get(
        _ path: String, at address: HTTPAddress, timeout: Duration = .seconds(5)
    ) throws(Failure)
        -> Answer
    {
        let target = address.reachable
        let deadline = ContinuousClock.now + timeout
        let socket = try connect(to: target, deadline: deadline)
        defer { close(socket) }
        let request = "GET \(path) HTTP/1.1\r\nHost: \(target)\r\nConnection: close\r\nUser-Agent: waybill\r\n\r\n"
        var bytes = Array(request.utf8)
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeMutableBytes { send(socket, $0.baseAddress! + sent, $0.count - sent, 0) }
            guard count > 0 else { throw Failure(description: "\(target): sending the request failed: \(errorText())") }
            sent += count
        }
        bytes = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while true {
            try wait(for: Int16(POLLIN), on: socket, until: deadline, doing: "waiting for the answer from \(target)")
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if count < 0 { throw Failure(description: "\(target): reading the answer failed: \(errorText())") }
            if count == 0 { break }
            bytes += buffer.prefix(count)
        }
        return try parse(bytes, from: target)
    }

    private static func connect(to address: HTTPAddress, deadline: ContinuousClock.Instant) throws(Failure) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(address.host, String(address.port), &hints, &found)
        guard status == 0, let first = found else {
            throw Failure(description: "\(address): cannot resolve the host: \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(first) }
        var lastError = "no address"
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            entry = info.pointee.ai_next
            let socket = Glibc.socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
            guard socket >= 0 else { continue }
            _ = fcntl(socket, F_SETFL, fcntl(socket, F_GETFL) | O_NONBLOCK)
            if Glibc.connect(socket, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return socket }
            guard errno == EINPROGRESS else {
                lastError = errorText()
                close(socket)
                continue
            }
            do {
                try wait(for: Int16(POLLOUT), on: socket, until: deadline, doing: "connecting to \(address)")
            } catch {
                close(socket)
                throw error
            }
            var problem: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(socket, SOL_SOCKET, SO_ERROR, &problem, &length)
            if problem == 0 { return socket }
            lastError = String(cString: strerror(problem))
            close(socket)
        }
        throw Failure(description: "\(address): cannot connect: \(lastError); is a worker serving there?")
    }

    private static func wait(
        for events: Int16, on socket: Int32, until deadline: ContinuousClock.Instant, doing what: String
    ) throws(Failure) {
        while true {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { throw Failure(description: "timed out \(what)") }
            var descriptor = pollfd(fd: socket, events: events, revents: 0)
            let milliseconds = Int32(
                clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            let ready = poll(&descriptor, 1, milliseconds)
            if ready > 0 { return }
            if ready < 0 && errno != EINTR { throw Failure(description: "\(what): \(errorText())") }
        }
    }

    private static func parse(_ bytes: [UInt8], from address: HTTPAddress) throws(Failure) -> Answer {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let end = text.range(of: "\r\n\r\n") else {
            throw Failure(description: "\(address): the answer is not HTTP (no end of headers)")
        }
        let statusLine = text[..<end.lowerBound].prefix { $0 != "\r" }
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else {
            throw Failure(description: "\(address): the answer is not HTTP: '\(statusLine.prefix(60))'")
        }
        return Answer(status: status, body: String(text[end.upperBound...]))
    }

    private static func errorText() -> String { String(cString: strerror(errno)) }
}

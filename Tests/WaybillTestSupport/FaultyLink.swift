import Foundation
import Glibc
import Synchronization

/// A TCP relay on 127.0.0.1 between a client and the real broker, for faults the broker cannot be asked
/// for: it can hold back everything the broker sends on the connections open so far (so publisher
/// confirms and heartbeats never arrive) and cut every connection abruptly (a dead network rather than a
/// polite connection.close). Later connections are relayed normally, so the client can reconnect. Made with
/// `refusing: true` it stands in for a broker that is down: it accepts each connection and closes it at once, until
/// ``relayNewConnections()``.
public final class FaultyLink: Sendable {
    /// The port it listens on (127.0.0.1).
    public let port: UInt16
    private let listener: Int32
    private let brokerPort: UInt16
    private let control = Mutex(Control())

    private struct Control {
        /// Connections with a serial number below this one are held.
        var holdBelow = 0
        var cutRequested = false
        var stopped = false
        var accepted = 0
        var refusing = false
        var refused = 0
    }

    /// Listens on a free port and relays to the broker on `brokerPort`; `refusing` closes every new connection
    /// until ``relayNewConnections()``.
    public init(brokerPort: UInt16, refusing: Bool = false) throws {
        self.brokerPort = brokerPort
        control.withLock { $0.refusing = refusing }
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(listener, 8) == 0 else { throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
        let thread = Thread { [self] in relay() }
        thread.name = "faulty-link"
        thread.start()
    }

    /// Connections relayed so far.
    public var acceptedConnections: Int { control.withLock { $0.accepted } }

    /// Connections closed at once while refusing.
    public var refusedConnections: Int { control.withLock { $0.refused } }

    /// Starts refusing: connections from now on are closed at once, as by a broker that is down.
    public func refuseNewConnections() { control.withLock { $0.refusing = true } }

    /// Stops refusing: connections from now on are relayed to the broker.
    public func relayNewConnections() { control.withLock { $0.refusing = false } }

    /// Stops forwarding the broker's bytes to the client on every connection open now (they wait in the
    /// kernel's buffers).
    public func holdBrokerBytes() { control.withLock { $0.holdBelow = $0.accepted } }

    /// Closes every relayed connection at once, without any AMQP goodbye.
    public func cut() { control.withLock { $0.cutRequested = true } }

    /// Ends the relay thread and closes its sockets.
    public func stop() { control.withLock { $0.stopped = true } }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    private func relay() {
        var pairs: [(client: Int32, broker: Int32, serial: Int)] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let (holdBelow, cut, stopped) = control.withLock { state in
                defer { state.cutRequested = false }
                return (state.holdBelow, state.cutRequested, state.stopped)
            }
            if cut || stopped {
                for pair in pairs {
                    shutdown(pair.client, Int32(SHUT_RDWR))
                    close(pair.client)
                    close(pair.broker)
                }
                pairs.removeAll()
            }
            if stopped {
                close(listener)
                return
            }
            var descriptors = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
            for pair in pairs {
                descriptors.append(pollfd(fd: pair.client, events: Int16(POLLIN), revents: 0))
                let held = pair.serial < holdBelow
                descriptors.append(pollfd(fd: pair.broker, events: held ? 0 : Int16(POLLIN), revents: 0))
            }
            guard poll(&descriptors, nfds_t(descriptors.count), 20) > 0 else { continue }
            let polledPairs = pairs.count
            if descriptors[0].revents & Int16(POLLIN) != 0,
                control.withLock({ state in
                    guard state.refusing else { return false }
                    state.refused += 1
                    return true
                })
            {
                close(accept(listener, nil, nil))
            } else if descriptors[0].revents & Int16(POLLIN) != 0 {
                let client = accept(listener, nil, nil)
                let broker = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var address = Self.loopback(port: brokerPort)
                let connected = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(broker, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                if client >= 0, connected == 0 {
                    let serial = control.withLock { state in
                        defer { state.accepted += 1 }
                        return state.accepted
                    }
                    pairs.append((client, broker, serial))
                } else {
                    close(client)
                    close(broker)
                }
            }
            var closed: Set<Int> = []
            for (index, pair) in pairs.prefix(polledPairs).enumerated() {
                let clientEvents = descriptors[1 + index * 2].revents
                let brokerEvents = descriptors[2 + index * 2].revents
                if clientEvents != 0, !forward(from: pair.client, to: pair.broker, &buffer) { closed.insert(index) }
                if pair.serial >= holdBelow, brokerEvents != 0, !forward(from: pair.broker, to: pair.client, &buffer) {
                    closed.insert(index)
                }
            }
            for index in closed.sorted(by: >) {
                close(pairs[index].client)
                close(pairs[index].broker)
                pairs.remove(at: index)
            }
        }
    }

    private func forward(from source: Int32, to target: Int32, _ buffer: inout [UInt8]) -> Bool {
        let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
        guard count > 0 else { return false }
        var sent = 0
        while sent < count {
            let written = buffer.withUnsafeBytes { write(target, $0.baseAddress! + sent, count - sent) }
            guard written > 0 else { return false }
            sent += written
        }
        return true
    }
}

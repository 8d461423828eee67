import AMQPTransport
import Foundation
import PlainText
import SagaEngine
import SagaStore
import WaybillDefinition
import WaybillWire

/// Which stored milestone events `waybill events replay` takes: one saga's, or a workflow's, a time window's and
/// some types'. Every part left `nil` (or empty) takes everything.
public struct EventSelection: Sendable, Hashable {
    /// One saga's events only.
    public var saga: SagaReference?
    /// Only this workflow's sagas.
    public var workflow: String?
    /// Committed at or after this time.
    public var from: Timestamp?
    /// Committed before this time.
    public var until: Timestamp?
    /// Topic patterns the event type must match (`order.shipped`, `order.*`, `shipment.#`); empty takes every type.
    public var types: [String]

    /// Describes a selection.
    public init(
        saga: SagaReference? = nil, workflow: String? = nil, from: Timestamp? = nil, until: Timestamp? = nil,
        types: [String] = []
    ) {
        self.saga = saga
        self.workflow = workflow
        self.from = from
        self.until = until
        self.types = types
    }

    /// Whether `event` is one of the selection (the saga itself is chosen by the reader).
    public func admits(_ event: StoredEvent) -> Bool {
        if let workflow, event.key.workflow != workflow { return false }
        if let from, event.at < from { return false }
        if let until, event.at >= until { return false }
        return types.isEmpty || types.contains { MessageWait.topic($0, matches: event.type) }
    }
}

extension SagaInspector {
    /// Events read from each file per query while the files are merged (by default).
    public static let eventPage = 512

    /// Calls `body` with every stored event `selection` takes, in the order they were published: the partition files
    /// and the pool's archive are merged by commit time, and one saga's events keep the order they were published in
    /// (they share a file, read in commit order). The files are read `pageSize` events at a time, so a wide window
    /// does not sit in memory; the archived part of the window does. A saga the archiver moves while the files are
    /// read has its events delivered at the end, still in their own order.
    public func forEachStoredEvent(
        _ selection: EventSelection, pageSize: Int = SagaInspector.eventPage,
        _ body: (StoredEvent) async throws(OperationsError) -> Void
    ) async throws(OperationsError) {
        if let reference = selection.saga {
            for event in try storedEvents(of: reference) where selection.admits(event) { try await body(event) }
            return
        }
        // One cursor per file, then the archive's part as one more, already sorted.
        var heads: [[StoredEvent]] = []
        var positions: [Int64?] = []
        var exhausted: [Bool] = []
        for source in sources {
            let page = try read("reading stored events", in: [source]) { snapshot in
                try snapshot.events(
                    from: selection.from, until: selection.until, workflow: selection.workflow, after: nil,
                    limit: pageSize)
            }[0]
            heads.append(page)
            positions.append(page.last?.row)
            exhausted.append(page.count < pageSize)
        }
        let archived = try archivedEvents(selection)
        var seen = Set(archived.map(\.eventId))
        heads.append(archived)
        positions.append(nil)
        exhausted.append(true)
        var cursors = Array(repeating: 0, count: heads.count)
        while true {
            var best: Int?
            for index in heads.indices where cursors[index] < heads[index].count {
                guard let current = best else {
                    best = index
                    continue
                }
                if heads[index][cursors[index]].at < heads[current][cursors[current]].at { best = index }
            }
            guard let index = best else { break }
            let event = heads[index][cursors[index]]
            cursors[index] += 1
            if cursors[index] == heads[index].count, !exhausted[index] {
                let after = positions[index]
                let page = try read("reading stored events", in: [sources[index]]) { snapshot in
                    try snapshot.events(
                        from: selection.from, until: selection.until, workflow: selection.workflow, after: after,
                        limit: pageSize)
                }[0]
                heads[index] = page
                cursors[index] = 0
                positions[index] = page.last?.row
                exhausted[index] = page.count < pageSize
            }
            seen.insert(event.eventId)
            if selection.admits(event) { try await body(event) }
        }
        // Sagas archived meanwhile left their file before it was read: their events are in the archive now.
        for event in try archivedEvents(selection) where !seen.contains(event.eventId) {
            try await body(event)
        }
    }

    /// How many stored events `selection` takes, by type.
    public func storedEventCounts(_ selection: EventSelection) async throws(OperationsError) -> [String: Int] {
        var counts: [String: Int] = [:]
        try await forEachStoredEvent(selection) { event in counts[event.type, default: 0] += 1 }
        return counts
    }

    /// One saga's stored events, from its partition file or the archive.
    func storedEvents(of reference: SagaReference) throws(OperationsError) -> [StoredEvent] {
        switch try locate(reference) {
        case .stored(let key):
            return try read("reading the events of \(key)", in: sources(forSagaId: key.id)) { snapshot in
                try snapshot.events(of: key)
            }.flatMap { $0 }
        case .archived(let saga, _):
            return saga.storedEvents
        }
    }

    /// The archived sagas' events in the window, sorted by commit time (one saga's keep their order).
    private func archivedEvents(_ selection: EventSelection) throws(OperationsError) -> [StoredEvent] {
        guard let pool else { return [] }
        do {
            let archive = try SagaArchive(dataDirectory: pool.path, readOnly: true)
            defer { try? archive.close() }
            // A saga's events all come before its last progress, so older ones cannot be in the window.
            let sagas = try archive.sagas(updatedSince: selection.from, workflow: selection.workflow)
            var events: [StoredEvent] = []
            for saga in sagas {
                events += saga.storedEvents.filter(selection.admits)
            }
            // Stable by time; ties keep the order above, which keeps each saga's own order.
            return events.enumerated().sorted { ($0.element.at, $0.offset) < ($1.element.at, $1.offset) }.map(
                \.element)
        } catch {
            throw Self.translate(error)
        }
    }
}

/// Re-publishes stored milestone events (`waybill events replay`): each with its original CloudEvents `id` (and AMQP
/// `message_id`), marked as a replay by the `waybillreplay` extension attribute and the `waybill-replay` header,
/// one at a time and confirmed before the next, so they arrive in the order they were first published.
public struct EventReplay: Sendable {
    /// Where replayed events go.
    public enum Target: Sendable, Hashable {
        /// Each event's own exchange and routing key (every consumer bound to it gets it again).
        case original
        /// One consumer's queue, through the default exchange (nobody else sees the replay).
        case queue(String)
    }

    /// Where they go.
    public var target: Target
    /// At most this many events per second; `nil` sends as fast as the broker confirms.
    public var rate: Double?
    /// The value of the replay mark: which replay sent the copy (`replay-20261206T101500Z`).
    public var replayId: String

    /// Describes a replay.
    public init(target: Target, rate: Double?, replayId: String) {
        self.target = target
        self.rate = rate
        self.replayId = replayId
    }

    /// A replay id for a replay started at `now`.
    public static func replayId(at now: Timestamp) -> String {
        "replay-" + UTCTime(millisecondsSinceEpoch: now.milliseconds).text(.seconds)
    }

    /// The CloudEvents extension attribute that marks a replayed copy; its value is the replay id.
    public static let attribute = "waybillreplay"

    /// What a replay did.
    public struct Run: Sendable, Hashable {
        /// The event a replay stopped at.
        public struct Stop: Sendable, Hashable {
            /// Its CloudEvents id.
            public var eventId: String
            /// Why it was not published.
            public var reason: String
        }

        /// Events published and confirmed, by type.
        public var published: [String: Int] = [:]
        /// The first event that could not be published; the replay stopped there.
        public var stopped: Stop?

        /// How many were published.
        public var total: Int { published.values.reduce(0, +) }
    }

    /// The copy of `event` this replay publishes.
    public func message(for event: StoredEvent) -> OutboundMessage {
        var body = event.body
        if case .object(var fields)? = try? JSONText.decode(event.body) {
            fields[Self.attribute] = .string(replayId)
            body = JSONText.encodeBytes(.object(fields))
        }
        var headers: AMQPTable = [:]
        for (name, value) in event.headers { headers[name] = .string(value) }
        headers[WireHeader.replay] = .string(replayId)
        let (exchange, routingKey, mandatory) =
            switch target {
            case .original: (event.exchange, event.type, false)
            case .queue(let queue): ("", queue, true)
            }
        return OutboundMessage(
            exchange: exchange, routingKey: routingKey, body: Data(body), mandatory: mandatory, persistent: true,
            contentType: event.contentType, messageID: event.eventId, headers: headers)
    }

    /// ``run(_:from:client:progress:)`` on a connection of its own.
    public func run(
        _ selection: EventSelection, from inspector: SagaInspector, broker: BrokerSettings,
        progress: (Int) -> Void = { _ in }
    ) async throws(OperationsError) -> Run {
        let client = try await broker.connect(logger: BrokerSettings.quietLogger)
        do {
            let run = try await run(selection, from: inspector, client: client, progress: progress)
            await client.close()
            return run
        } catch {
            await client.close()
            throw error
        }
    }

    /// Publishes every event `selection` takes, in order, at most ``rate`` per second; stops at the first one the
    /// broker does not confirm (the rest are not sent; run the replay again, consumers dedupe by id). `progress` is
    /// called after each event with the count so far.
    public func run(
        _ selection: EventSelection, from inspector: SagaInspector, client: AMQPClient,
        progress: (Int) -> Void = { _ in }
    ) async throws(OperationsError) -> Run {
        var run = Run()
        var pace = Pace(perSecond: rate)
        var sent = 0
        do {
            try await inspector.forEachStoredEvent(selection) { event throws(OperationsError) in
                await pace.wait()
                let message = message(for: event)
                if let problem = await client.publishConfirmed(message) {
                    run.stopped = Run.Stop(eventId: event.eventId, reason: problem)
                    throw OperationsError(.broker, problem)
                }
                run.published[event.type, default: 0] += 1
                sent += 1
                progress(sent)
            }
        } catch {
            guard run.stopped != nil else { throw error }
        }
        return run
    }
}

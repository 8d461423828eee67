import AMQPTransport
import Foundation
import PlainText
import SagaEngine
import SagaStore
import WaybillDefinition

/// `waybill dlq list|show|replay` as text and JSON.
public enum DeadLetterView {
    /// One row per message, head of the queue first.
    public static func listText(_ letters: [DeadLetter], queue: String, now: Date) -> String {
        guard !letters.isEmpty else { return "\(queue) is empty.\n" }
        var table = TextTable(["#", "ID", "WHEN", "SOURCE", "ORIGIN", "BYTES", "REASON"], right: [0, 5])
        for letter in letters {
            table.add([
                String(letter.position), letter.id, when(letter.at, now: now), letter.source ?? "-", origin(letter),
                String(letter.body.count), Words.cut(letter.reason, 100),
            ])
        }
        return table.render()
            + "\(Words.count(letters.count, "message")) shown from the head of \(queue); they stay in the queue.\n"
    }

    /// `{"queue", "messages": [...]}`.
    public static func listJSON(_ letters: [DeadLetter], queue: String) -> JSONValue {
        ["queue": .string(queue), "messages": .array(letters.map { letterJSON($0, withBody: false) })]
    }

    /// Everything about one message, its body included (the operator asked to see it).
    public static func showText(_ letter: DeadLetter, now: Date) -> String {
        var table = TextTable(["", ""])
        table.add(["id", letter.id])
        table.add(["position", String(letter.position)])
        table.add(["reason", letter.reason])
        table.add(["source", letter.source ?? "-"])
        table.add(["origin", origin(letter)])
        table.add(["when", when(letter.at, now: now)])
        table.add(["content type", letter.properties.contentType ?? "-"])
        table.add(["correlation id", letter.properties.correlationID ?? "-"])
        table.add(["reply to", letter.properties.replyTo ?? "-"])
        var out = table.renderRows()
        let headers = letter.properties.headers.keys.sorted()
        if !headers.isEmpty {
            out += "\nHeaders\n"
            for key in headers { out += "  \(key): \(headerText(letter.properties.headers[key] ?? .void))\n" }
        }
        out += "\nBody (\(Words.count(letter.body.count, "byte")))\n"
        out += bodyText(letter.body) + "\n"
        if letter.exchange != nil {
            out += "\nReplay it: waybill dlq replay \(letter.id.shellQuoted) --reason '<why>' [--dry-run]\n"
        }
        return out
    }

    /// The message with its headers and body (as JSON when it parses, else as text or base64).
    public static func showJSON(_ letter: DeadLetter) -> JSONValue {
        letterJSON(letter, withBody: true)
    }

    /// What the replay did, one row per chosen message.
    public static func replayText(_ results: [(DeadLetter, DeadLetterQueue.ReplayOutcome)], dryRun: Bool) -> String {
        guard !results.isEmpty else { return "No dead-lettered message matches; nothing replayed.\n" }
        var table = TextTable(["ID", "ORIGIN", "OUTCOME"])
        var replayed = 0
        for (letter, outcome) in results {
            let text: String
            switch outcome {
            case .replayed:
                text = "replayed"
                replayed += 1
            case .wouldReplay:
                text = "would replay"
                replayed += 1
            case .kept(let why): text = "kept: \(why)"
            }
            table.add([letter.id, origin(letter), text])
        }
        let verb = dryRun ? "would be replayed (dry run: nothing sent)" : "replayed and removed from the queue"
        return table.render() + "\(replayed) of \(Words.count(results.count, "message")) \(verb).\n"
    }

    /// `{"dryRun", "messages": [{..., "outcome", "detail"}]}`.
    public static func replayJSON(_ results: [(DeadLetter, DeadLetterQueue.ReplayOutcome)], dryRun: Bool) -> JSONValue {
        [
            "dryRun": .bool(dryRun),
            "messages": .array(
                results.map { letter, outcome in
                    guard case .object(var fields) = letterJSON(letter, withBody: false) else { return .null }
                    switch outcome {
                    case .replayed: fields["outcome"] = "replayed"
                    case .wouldReplay: fields["outcome"] = "would-replay"
                    case .kept(let why):
                        fields["outcome"] = "kept"
                        fields["detail"] = .string(why)
                    }
                    return .object(fields)
                }),
        ]
    }

    // MARK: - Pieces

    /// `orders order.placed`, `(default) waybill.replies.w1`, or `unknown`.
    public static func origin(_ letter: DeadLetter) -> String {
        guard let exchange = letter.exchange else { return "unknown" }
        return "\(exchange.isEmpty ? "(default)" : exchange) \(letter.routingKey ?? "")"
    }

    private static func when(_ date: Date?, now: Date) -> String {
        guard let date else { return "-" }
        return TimeText.short(Timestamp(date), now: Timestamp(now))
    }

    private static func headerText(_ value: AMQPFieldValue) -> String {
        switch value {
        case .string(let text): return text
        case .int(let number): return String(number)
        case .bool(let flag): return String(flag)
        case .double(let number): return String(number)
        case .bytes(let data): return String(data: data, encoding: .utf8) ?? "\(data.count) bytes"
        case .timestamp(let date):
            return TimeText.seconds(Timestamp(date))
        case .array(let values): return "[" + values.map(headerText).joined(separator: ", ") + "]"
        case .table(let table):
            return "{" + table.keys.sorted().map { "\($0): \(headerText(table[$0] ?? .void))" }.joined(separator: ", ")
                + "}"
        case .void: return "(void)"
        }
    }

    private static func bodyText(_ body: [UInt8]) -> String {
        if let value = try? JSONText.decode(body) { return PrettyJSON.render(value).dropLast().description }
        if let text = String(validating: body, as: UTF8.self) { return text }
        return "(binary) " + Data(body).base64EncodedString()
    }

    private static func headerJSON(_ value: AMQPFieldValue) -> JSONValue {
        switch value {
        case .string(let text): return .string(text)
        case .int(let number): return .number(Double(number))
        case .bool(let flag): return .bool(flag)
        case .double(let number): return .number(number)
        case .bytes(let data): return .string(String(data: data, encoding: .utf8) ?? data.base64EncodedString())
        case .timestamp(let date):
            return .string(TimeText.iso(Timestamp(date)))
        case .array(let values): return .array(values.map(headerJSON))
        case .table(let table): return .object(table.mapValues(headerJSON))
        case .void: return .null
        }
    }

    private static func letterJSON(_ letter: DeadLetter, withBody: Bool) -> JSONValue {
        var fields: [String: JSONValue] = [
            "id": .string(letter.id),
            "position": JSONFields.int(letter.position),
            "reason": .string(letter.reason),
            "source": JSONFields.string(letter.source),
            "exchange": JSONFields.string(letter.exchange),
            "routingKey": JSONFields.string(letter.routingKey),
            "at": letter.at.map { .string(TimeText.iso(Timestamp($0))) } ?? .null,
            "bytes": JSONFields.int(letter.body.count),
            "messageId": JSONFields.string(letter.properties.messageID),
            "correlationId": JSONFields.string(letter.properties.correlationID),
            "contentType": JSONFields.string(letter.properties.contentType),
        ]
        if withBody {
            fields["headers"] = .object(letter.properties.headers.mapValues(headerJSON))
            if let value = try? JSONText.decode(letter.body) {
                fields["body"] = value
            } else if let text = String(validating: letter.body, as: UTF8.self) {
                fields["bodyText"] = .string(text)
            } else {
                fields["bodyBase64"] = .string(Data(letter.body).base64EncodedString())
            }
        }
        return .object(fields)
    }
}

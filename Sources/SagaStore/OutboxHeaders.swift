import WaybillDefinition

/// The text form of outbox headers (`outbox.headers`): a flat JSON object of strings, written by ``JSONText`` (keys
/// sorted, no whitespace), so SQLite's JSON functions can read it.
///
/// Rows written before this used a codec of their own that escaped every control character as `\u00XX`, where
/// ``JSONText`` writes `\n`, `\t` and the like; both are the same JSON, and both read back here.
extension OutboxMessage {
    /// `headers` as stored text.
    static func headerText(_ headers: [String: String]) -> String {
        JSONText.encode(strings: headers)
    }

    /// The headers in stored `text`; `nil` when it is not JSON or not a flat object of strings.
    static func headers(fromText text: String) -> [String: String]? {
        guard case .object(let members)? = try? JSONText.decode(text) else { return nil }
        var headers: [String: String] = [:]
        headers.reserveCapacity(members.count)
        for (key, value) in members {
            guard case .string(let text) = value else { return nil }
            headers[key] = text
        }
        return headers
    }
}

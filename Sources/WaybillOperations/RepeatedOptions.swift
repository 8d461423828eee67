/// The operator commands' rule that every option is given at most once.
///
/// ArgumentParser keeps the last value of a repeated single-value option without a word (`--db a.sqlite --db
/// b.sqlite` reads `b.sqlite`), so a command pasted together from two others would quietly act on something else
/// than the operator thinks. No option of the operator commands takes several values, so any repetition is a
/// mistake, except for the few options that collect one value per use (``collecting``).
public enum RepeatedOptions {
    /// Options that take one value per use and add them up (`waybill workflows migrate --map a=b --map c=d`).
    public static let collecting: Set<String> = ["--map", "--select"]

    /// Throws ``OperationsError/Code/badArgument`` naming the first long option that `arguments` (the words after
    /// the program name) give more than once, with the values given. Words after `--` are not options.
    public static func check(_ arguments: [String]) throws(OperationsError) {
        var seen: [String: [String]] = [:]
        var order: [String] = []
        for (index, word) in arguments.enumerated() {
            if word == "--" { break }
            guard word.hasPrefix("--"), word.count > 2 else { continue }
            let name: String
            var value: String?
            if let equals = word.firstIndex(of: "=") {
                name = String(word[..<equals])
                value = String(word[word.index(after: equals)...])
            } else {
                name = word
                if index + 1 < arguments.count, !arguments[index + 1].hasPrefix("-") { value = arguments[index + 1] }
            }
            if seen[name] == nil { order.append(name) }
            seen[name, default: []].append(value ?? "")
        }
        guard let name = order.first(where: { (seen[$0]?.count ?? 0) > 1 && !collecting.contains($0) }),
            let values = seen[name]
        else { return }
        let given = values.filter { !$0.isEmpty }
        var message =
            "\(name) is given \(values.count) times\(given.isEmpty ? "" : " (\(given.joined(separator: ", ")))"); "
            + "give it once (a repeated option does not add up: only the last one would count)"
        if name == "--db" { message += "; to read every partition file of a pool, give its directory with --data-dir" }
        throw OperationsError(.badArgument, message)
    }
}

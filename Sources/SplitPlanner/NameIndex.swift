/// Gives names dense indices 0, 1, 2, ... in the order they are first inserted.
///
/// Orders are small (about ten SKUs and ten warehouses), so a lookup scans the names; once there are more than
/// `linearLimit` names a dictionary takes over, so a large stock list does not make planning quadratic.
struct NameIndex {
    private static let linearLimit = 16

    /// The names, in insertion order; a name's index is its position here.
    private(set) var names: [String] = []
    private var table: [String: Int] = [:]

    init(capacity: Int) {
        names.reserveCapacity(capacity)
    }

    var count: Int { names.count }

    func index(of name: String) -> Int? {
        if names.count <= Self.linearLimit {
            for index in names.indices where names[index] == name {
                return index
            }
            return nil
        }
        return table[name]
    }

    /// Like `index(of:)`, but first tries `hint`: one comparison when the caller guessed right.
    func index(of name: String, hint: Int) -> Int? {
        if hint >= 0 && hint < names.count && names[hint] == name {
            return hint
        }
        return index(of: name)
    }

    /// Returns the index of `name`, adding it first when it is new; `hint` as for `index(of:hint:)`.
    mutating func insert(_ name: String, hint: Int = -1) -> Int {
        if let index = index(of: name, hint: hint) {
            return index
        }
        names.append(name)
        let index = names.count - 1
        if names.count > Self.linearLimit {
            if table.isEmpty {
                table.reserveCapacity(names.count * 2)
                for (position, known) in names.enumerated() {
                    table[known] = position
                }
            } else {
                table[name] = index
            }
        }
        return index
    }
}

package plan

import "encoding/json"

// DetailAs returns an item's Detail as the kind's own type T. A plan built
// in this process holds T (or *T); a plan read back from JSON holds the
// decoded map, which is converted through JSON. The second result is false
// when the item has no detail or it does not decode as T; callers still
// check that the fields they rely on are set.
func DetailAs[T any](it Item) (T, bool) {
	var d T
	switch v := it.Detail.(type) {
	case T:
		return v, true
	case *T:
		if v == nil {
			return d, false
		}
		return *v, true
	case nil:
		return d, false
	}
	b, err := json.Marshal(it.Detail)
	if err != nil || json.Unmarshal(b, &d) != nil {
		return d, false
	}
	return d, true
}

package routes

// MeetTableName is the name of the built-in table for Meet's external API.
const MeetTableName = "meet"

// Meet returns the built-in table for Meet's external API
// (/external-api/v1.0/), mirroring its viewsets and HasRequiredRoomScope:
//
//	POST /external-api/v1.0/application/token/   public (the token endpoint)
//	/external-api/v1.0/rooms/                     GET, HEAD rooms:list; POST rooms:create
//	/external-api/v1.0/rooms/{id}/                GET, HEAD rooms:retrieve
//	either rooms route, any other method          403 Unknown action (after authentication)
//	anything else                                 authentication, no scope
func Meet() *Table {
	rooms := route{kind: matchExact, pattern: "/external-api/v1.0/rooms/", byAction: true}
	rooms.setAction(mGET, "rooms:list")
	rooms.setAction(mHEAD, "rooms:list")
	rooms.setAction(mPOST, "rooms:create")

	// One path segment without "." or "/" (the default lookup_value_regex
	// of DRF routers, [^/.]+), then the trailing slash.
	room := route{kind: matchSegment, pattern: "/external-api/v1.0/rooms/", byAction: true}
	room.setAction(mGET, "rooms:retrieve")
	room.setAction(mHEAD, "rooms:retrieve")

	token := route{
		kind:    matchExact,
		pattern: "/external-api/v1.0/application/token/",
		methods: 1 << mPOST,
	}
	token.rule.Public = true

	return &Table{name: MeetTableName, routes: []route{token, rooms, room}, def: DefaultAuthenticate}
}

func (r *route) setAction(m method, scope string) {
	r.actions[m] = scope
	r.hasAction[m] = true
}

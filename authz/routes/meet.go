package routes

import "strings"

// MeetTableName is the name of the built-in table for Meet's external API.
const MeetTableName = "meet"

// MeetPrefix is the part of Meet's URL space the meet table guards: under
// it, what the table does not name is refused (unknown action).
const MeetPrefix = "/external-api/"

// Meet returns the built-in table for Meet's external API
// (/external-api/v1.0/), mirroring its router (a Django REST framework
// DefaultRouter, so every route also has its format-suffix forms), its
// viewsets and HasRequiredRoomScope:
//
//	POST /external-api/v1.0/application/token/      public (the token endpoint)
//	     /external-api/v1.0/application/token.{fmt}  same, format suffix
//	/external-api/v1.0/rooms/, rooms.{fmt}           GET, HEAD rooms:list; POST rooms:create
//	/external-api/v1.0/rooms/{id}/, rooms/{id}.{fmt} GET, HEAD rooms:retrieve
//	either rooms route, any other method             403 Unknown action (after authentication);
//	                                                 under the 2026.08 profile, 405 with Allow
//	                                                 (OPTIONS excepted: DRF serves it; see Table.Allow)
//	anything else under /external-api/               403 Unknown action (after authentication)
//	anything else                                    authentication, no scope
//
// {fmt} is [a-z0-9]+ and may be followed by "/"; {id} is one segment without
// "." or "/" (DRF's default lookup_value_regex, [^/.]+). Paths are matched
// decoded (see the package comment).
//
// Failing closed under the prefix matters because Meet's router serves more
// than the canonical paths (rooms.json is the rooms list): a path the table
// does not know may still be an action that needs a scope.
//
// Outside MeetPrefix the table requires authentication; a routes file with
// "include: meet" and "default: public" makes it public instead.
func Meet() *Table {
	const api = "/external-api/v1.0/"

	rooms := route{kind: matchDRFList, pattern: api + "rooms", byAction: true}
	rooms.setAction(mGET, "rooms:list")
	rooms.setAction(mHEAD, "rooms:list")
	rooms.setAction(mPOST, "rooms:create")

	room := route{kind: matchDRFDetail, pattern: api + "rooms/", byAction: true}
	room.setAction(mGET, "rooms:retrieve")
	room.setAction(mHEAD, "rooms:retrieve")

	// What DRF's router serves on them (RoomViewSet: list, create,
	// retrieve), in DRF's order: any other method is a 405 under 2026.08.
	rooms.allow = drfAllow(&rooms)
	room.allow = drfAllow(&room)

	token := route{
		kind:    matchDRFList,
		pattern: api + "application/token",
		methods: 1 << mPOST,
	}
	token.rule.Public = true

	return &Table{
		name:     MeetTableName,
		routes:   []route{token, rooms, room},
		prefixes: []prefixDefault{{prefix: MeetPrefix, def: DefaultUnknownAction}},
		def:      DefaultAuthenticate,
	}
}

func (r *route) setAction(m method, scope string) {
	r.actions[m] = scope
	r.hasAction[m] = true
}

// drfAllow is the Allow header DRF sends for a viewset route: the methods
// with an action, HEAD where GET has one, and OPTIONS, in the order of
// Django's View.http_method_names.
func drfAllow(r *route) string {
	var names []string
	for _, m := range [...]method{mGET, mPOST, mPUT, mPATCH, mDELETE, mHEAD, mOPTIONS} {
		if r.hasAction[m] || m == mOPTIONS || (m == mHEAD && r.hasAction[mGET]) {
			names = append(names, methodNames[m])
		}
	}
	return strings.Join(names, ", ")
}

package authz

import "encoding/base64"

func b64(b []byte, pad bool) string {
	if pad {
		return base64.URLEncoding.EncodeToString(b)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

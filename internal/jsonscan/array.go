package jsonscan

// Elements calls fn with the raw bytes of each element of the JSON array
// arr, in order, and returns how many there were. The array is validated
// as it is walked; an error (arr is not one valid array, or fn returned
// false) stops the walk. Elements do not allocate.
func Elements(arr []byte, fn func(elem []byte) bool) (int, error) {
	i := skipWS(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return 0, unexpected(arr, i, "'['")
	}
	n := 0
	i = skipWS(arr, i+1)
	if i < len(arr) && arr[i] == ']' {
		if skipWS(arr, i+1) != len(arr) {
			return 0, syntaxErr(i+1, "data after the array")
		}
		return 0, nil
	}
	for {
		end, err := skipValue(arr, i, 1)
		if err != nil {
			return n, err
		}
		n++
		if fn != nil && !fn(arr[i:end]) {
			return n, syntaxErr(i, "walk stopped")
		}
		i = skipWS(arr, end)
		if i >= len(arr) {
			return n, unexpected(arr, i, "',' or ']'")
		}
		if arr[i] == ']' {
			if skipWS(arr, i+1) != len(arr) {
				return n, syntaxErr(i+1, "data after the array")
			}
			return n, nil
		}
		if arr[i] != ',' {
			return n, unexpected(arr, i, "',' or ']'")
		}
		i = skipWS(arr, i+1)
	}
}

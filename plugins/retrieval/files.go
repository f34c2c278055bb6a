package retrieval

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

// The Files API: POST /v1/files (multipart: file, purpose), GET /v1/files,
// GET and DELETE /v1/files/{id}, GET /v1/files/{id}/content.

// fileRec is a stored file's record.
type fileRec struct {
	ID        string `json:"id"`
	Filename  string `json:"filename"`
	Bytes     int64  `json:"bytes"`
	CreatedAt int64  `json:"created_at"`
	Purpose   string `json:"purpose"`
	Owner     string `json:"owner"` // the uploader's scope (scopeOf)
}

// fileObject is OpenAI's OpenAIFile.
type fileObject struct {
	ID        string `json:"id"`
	Object    string `json:"object"`
	Bytes     int64  `json:"bytes"`
	CreatedAt int64  `json:"created_at"`
	Filename  string `json:"filename"`
	Purpose   string `json:"purpose"`
	Status    string `json:"status"`
}

func (f *fileRec) object() fileObject {
	return fileObject{ID: f.ID, Object: "file", Bytes: f.Bytes, CreatedAt: f.CreatedAt, Filename: f.Filename, Purpose: f.Purpose, Status: "processed"}
}

// The purposes a file here may have: files for retrieval.
var filePurposes = []string{"assistants", "user_data"}

// maxFilename bounds an uploaded file's name, in bytes.
const maxFilename = 512

// upload is a parsed POST /v1/files.
type upload struct {
	filename string
	content  []byte
	purpose  string
}

// parseUpload reads a multipart/form-data upload: a part "file" (with a
// filename) and a field "purpose", each once. A file over maxFile bytes
// is a 413; an unknown field, a repeated one or a malformed body a 400.
func parseUpload(contentType string, body []byte, maxFile int64) (upload, error) {
	var u upload
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return u, errInvalid("", "POST /v1/files takes multipart/form-data (with a boundary) holding the fields file and purpose.")
	}
	r := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	seenFile, seenPurpose := false, false
	for {
		part, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return u, errInvalid("", "malformed multipart body: %v", err)
		}
		switch name := part.FormName(); name {
		case "file":
			if seenFile {
				return u, errInvalid("file", "the field 'file' is given more than once.")
			}
			seenFile = true
			fn := part.FileName()
			if fn == "" || fn == "." || fn == "/" {
				return u, errInvalid("file", "the part 'file' must be a file, with a filename.")
			}
			if len(fn) > maxFilename || !utf8.ValidString(fn) || strings.ContainsAny(fn, "\x00\r\n") {
				return u, errInvalid("file", "the file's name must be UTF-8 of at most %d bytes, without control characters.", maxFilename)
			}
			b, err := io.ReadAll(io.LimitReader(part, maxFile+1))
			if err != nil {
				return u, errInvalid("file", "malformed multipart body: %v", err)
			}
			if int64(len(b)) > maxFile {
				return u, &apiError{Status: fasthttp.StatusRequestEntityTooLarge, Type: "invalid_request_error", Param: "file",
					Message: "The file is larger than " + strconv.FormatInt(maxFile, 10) + " bytes, the largest max_file_size of the collections."}
			}
			u.filename, u.content = fn, b
		case "purpose":
			if seenPurpose {
				return u, errInvalid("purpose", "the field 'purpose' is given more than once.")
			}
			seenPurpose = true
			b, err := io.ReadAll(io.LimitReader(part, 65))
			if err != nil {
				return u, errInvalid("purpose", "malformed multipart body: %v", err)
			}
			u.purpose = strings.TrimSpace(string(b))
		case "expires_after[anchor]", "expires_after[seconds]", "expires_after":
			return u, errInvalid("expires_after", "Files here do not expire: leave out expires_after, and delete a file with DELETE /v1/files/{file_id}.")
		default:
			return u, errInvalid(name, "Unrecognized request argument supplied: %s", name)
		}
	}
	if !seenFile {
		return u, errInvalid("file", "Missing required parameter: 'file'.")
	}
	if !seenPurpose {
		return u, errInvalid("purpose", "Missing required parameter: 'purpose'.")
	}
	return u, nil
}

// serveFiles answers /v1/files: POST uploads, GET lists.
func serveFiles(a *apiCall) (any, error) {
	if a.ctx.IsPost() {
		return a.uploadFile()
	}
	return a.listFiles()
}

func (a *apiCall) uploadFile() (any, error) {
	u, err := parseUpload(string(a.ctx.Request.Header.ContentType()), a.ctx.PostBody(), a.l.api.maxFile)
	if err != nil {
		return nil, err
	}
	ok := false
	for _, p := range filePurposes {
		ok = ok || u.purpose == p
	}
	if !ok {
		return nil, errInvalid("purpose", "Invalid 'purpose': %q. This gateway keeps files for retrieval: use assistants or user_data.", u.purpose)
	}
	rec := fileRec{ID: newID(fileIDPrefix), Filename: u.filename, Bytes: int64(len(u.content)),
		CreatedAt: time.Now().Unix(), Purpose: u.purpose, Owner: a.scope}
	b, err := json.Marshal(&rec)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	if err := a.st.be.PutFile(ctx, rec.ID, b, u.content); err != nil {
		return nil, err
	}
	return rec.object(), nil
}

// apiTimeout bounds the store's work for one request (attaching a file:
// chunking and embedding it).
const apiTimeout = 10 * time.Minute

func (a *apiCall) listFiles() (any, error) {
	p, err := parseList(a.ctx.QueryArgs(), 10000, 10000, true, false)
	if err != nil {
		return nil, err
	}
	purpose := string(a.ctx.QueryArgs().Peek("purpose"))
	recs, err := a.st.be.List(a.ctx, kindFile, "")
	if err != nil {
		return nil, err
	}
	var files []fileObject
	for _, r := range recs {
		var f fileRec
		if json.Unmarshal(r.Val, &f) != nil || f.Owner != a.scope || (purpose != "" && f.Purpose != purpose) {
			continue
		}
		files = append(files, f.object())
	}
	page, more, err := paginate(files, func(f fileObject) listKey { return listKey{f.CreatedAt, f.ID} }, p)
	if err != nil {
		return nil, err
	}
	return newListPage(page, more, func(f fileObject) string { return f.ID }), nil
}

// file returns the file id if the caller may see it (its scope uploaded
// it); else the 404 of a file that does not exist.
func (a *apiCall) file(id, param string) (*fileRec, error) {
	b, err := a.st.be.Get(a.ctx, kindFile, id)
	if errors.Is(err, errNotFound) {
		return nil, errNoObject(param, "File object", id)
	}
	if err != nil {
		return nil, err
	}
	var f fileRec
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, err
	}
	if f.Owner != a.scope {
		return nil, errNoObject(param, "File object", id)
	}
	return &f, nil
}

// serveFile answers /v1/files/{id} (GET, DELETE) and
// /v1/files/{id}/content (GET).
func serveFile(a *apiCall) (any, error) {
	segs, ok := pathSegments(a.ctx, "/v1/files/")
	if !ok || len(segs) == 0 || len(segs) > 2 || (len(segs) == 2 && segs[1] != "content") {
		return nil, errUnknownPath(a)
	}
	if len(segs) == 2 {
		if !a.ctx.IsGet() {
			return nil, errMethod(a, "GET")
		}
		return a.fileContent(segs[0])
	}
	f, err := a.file(segs[0], "file_id")
	if err != nil {
		return nil, err
	}
	if a.ctx.IsDelete() {
		return a.deleteFile(f)
	}
	return f.object(), nil
}

// fileContent answers the bytes of a file, to a caller that sees the file
// and whom every document made of it admits.
func (a *apiCall) fileContent(id string) (any, error) {
	f, err := a.file(id, "file_id")
	if err != nil {
		return nil, err
	}
	for _, v := range a.allStores() {
		if d, ok := v.coll.C.Doc(f.ID); ok && isAPIDoc(d.ID, d.Version) && !d.ACL.Allows(a.rp) {
			return nil, errPermission("file_id", "The content of %s is restricted: a vector store holds it with an ACL that does not admit you.", f.ID)
		}
	}
	c, err := a.st.be.FileContent(a.ctx, f.ID)
	if errors.Is(err, errNotFound) {
		return nil, errNoObject("file_id", "File object", id)
	}
	if err != nil {
		return nil, err
	}
	a.ctx.Response.Header.Set("content-disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(f.Filename)}))
	return rawBody{contentType: "application/octet-stream", body: c}, nil
}

// deleteFile deletes a file and every document made of it, in every
// vector store.
func (a *apiCall) deleteFile(f *fileRec) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	fl := a.st.lock(fileLock(f.ID))
	fl.Lock()
	defer func() {
		fl.Unlock()
		a.st.dropLock(fileLock(f.ID))
	}()
	for _, v := range a.allStores() {
		if err := a.detach(ctx, v, f.ID); err != nil {
			return nil, err
		}
	}
	if err := a.st.be.DeleteFile(ctx, f.ID); err != nil {
		return nil, err
	}
	return struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Deleted bool   `json:"deleted"`
	}{f.ID, "file", true}, nil
}

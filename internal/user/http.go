package user

import (
	_ "embed"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/lastmile/lastmile/internal/httpx"
)

// OpenAPI describes the routes below (an OpenAPI 3.1 fragment).
//
//go:embed openapi.json
var OpenAPI []byte

// Handler serves the accounts API.
type Handler struct {
	svc *Service
}

// NewHandler returns the accounts API over svc.
func NewHandler(svc *Service) *Handler { return &Handler{svc: svc} }

// Routes mounts the accounts API; requireAuth guards the calls that need a token.
func (h *Handler) Routes(r chi.Router, requireAuth func(http.Handler) http.Handler) {
	r.Post("/api/v1/auth/signup", h.signUp)
	r.Post("/api/v1/auth/login", h.signIn)
	r.Group(func(r chi.Router) {
		r.Use(requireAuth)
		r.Post("/api/v1/auth/logout", h.signOut)
		r.Get("/api/v1/me", h.me)
		r.Patch("/api/v1/me", h.updateMe)
	})
}

func (h *Handler) signUp(w http.ResponseWriter, r *http.Request) {
	var in SignUpInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	sess, err := h.svc.SignUp(r.Context(), in, httpx.Client(r))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusCreated, sess)
}

func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	sess, err := h.svc.SignIn(r.Context(), in.Email, in.Password, httpx.Client(r))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, sess)
}

func (h *Handler) signOut(w http.ResponseWriter, r *http.Request) {
	p, err := httpx.Caller(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	if err := h.svc.SignOut(r.Context(), p); err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) me(w http.ResponseWriter, r *http.Request) {
	p, err := httpx.Caller(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	u, err := h.svc.Get(r.Context(), p.UserID)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, u)
}

func (h *Handler) updateMe(w http.ResponseWriter, r *http.Request) {
	p, err := httpx.Caller(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var in ProfileInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	u, err := h.svc.UpdateProfile(r.Context(), p.UserID, in)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, u)
}

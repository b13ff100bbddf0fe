/*
 * The words of Miky's mails, in English and Italian.  Each mail is the
 * same few pieces in both parts: a greeting by first name, paragraphs
 * before the link, the link as a button (text part: on its own line),
 * paragraphs after it, the signature.  The strings are UTF-8.
 */
#include <stdbool.h>
#include <string.h>

#include "mail.h"
#include "lib/utf8.h"

#define WRAP	72		/* text part: code points per line */

struct copy {
	const char	*subject;
	const char	*before[3];	/* paragraphs before the link */
	const char	*action;	/* the button's words */
	const char	*after[2];	/* paragraphs after it */
};

static const struct lang {
	const char	*code;
	const char	*hello;		/* followed by the name and a comma */
	const char	*fallback;	/* above the link written out */
	const char	*signature;
	struct copy	 copy[MAIL__MAX];
} langs[] = {
	{ "en", "Hi", "If the button doesn't work, copy this link into "
	    "your browser:", "The Miky team", {
	[MAIL_VERIFY] = { "Confirm your email – Miky",
	    { "Thanks for signing up for Miky! Please confirm your email "
	    "address to activate your account." },
	    "Confirm your email",
	    { "The link is valid for 48 hours. If you didn't sign up for "
	    "Miky, you can safely ignore this email." } },
	[MAIL_RESET] = { "Reset your password – Miky",
	    { "We received a request to reset the password of your Miky "
	    "account. Use the link below to choose a new one." },
	    "Reset your password",
	    { "The link is valid for 1 hour and works only once. If you "
	    "didn't ask to reset your password, ignore this email: your "
	    "password stays as it is." } },
	[MAIL_ALREADY_REGISTERED] = { "You already have an account – Miky",
	    { "Someone (hopefully you) just tried to sign up for Miky with "
	    "this email address. You already have an account, so we did not "
	    "create a new one.",
	    "Sign in with your existing password. If you don't remember it, "
	    "you can reset it from the sign-in page." },
	    "Sign in to Miky",
	    { "If this wasn't you, you can ignore this email: nothing has "
	    "changed in your account." } },
	[MAIL_PASSWORD_CHANGED] = { "Your password was changed – Miky",
	    { "The password of your Miky account was just changed. If you "
	    "did this, there is nothing else to do.",
	    "If it wasn't you, reset your password now to secure your "
	    "account." },
	    "Reset your password", { NULL } },
	[MAIL_REFERRAL_CREDITS] = { "A friend joined: you earned credits – Miky",
	    { "Good news: a friend you invited to Miky has just had their "
	    "first chat. Your referral reward in credits has been added to "
	    "your balance.",
	    "If they also become a paying customer, you will earn referral "
	    "cash too." },
	    "See your referrals", { NULL } },
	[MAIL_REFERRAL_CASH] = { "You earned referral cash – Miky",
	    { "A friend you invited to Miky has just made their first "
	    "payment, so you have earned referral cash.",
	    "Once your balance reaches the minimum, you can ask for a "
	    "cash-out to PayPal or your bank account." },
	    "See your rewards", { NULL } },
	[MAIL_PAYMENT_FAILED] = { "Your payment didn't go through – Miky",
	    { "We couldn't take the payment for your Miky subscription. We "
	    "will try again over the next few days.",
	    "To keep your plan without interruption, please check or update "
	    "your payment method." },
	    "Update your payment method",
	    { "If you have already fixed it, you can ignore this email." } },
	} },
	{ "it", "Ciao", "Se il pulsante non funziona, copia questo link nel "
	    "browser:", "Il team di Miky", {
	[MAIL_VERIFY] = { "Conferma la tua email – Miky",
	    { "grazie per aver scelto Miky! Conferma il tuo indirizzo email "
	    "per attivare l'account." },
	    "Conferma la tua email",
	    { "Il link è valido per 48 ore. Se non hai richiesto tu "
	    "l'iscrizione a Miky, puoi ignorare questa email." } },
	[MAIL_RESET] = { "Reimposta la tua password – Miky",
	    { "abbiamo ricevuto una richiesta di reimpostazione della "
	    "password del tuo account Miky. Usa il link qui sotto per "
	    "sceglierne una nuova." },
	    "Reimposta la password",
	    { "Il link è valido per 1 ora e si può usare una sola volta. Se "
	    "non hai chiesto tu di reimpostare la password, ignora questa "
	    "email: la tua password resterà invariata." } },
	[MAIL_ALREADY_REGISTERED] = { "Hai già un account – Miky",
	    { "qualcuno (speriamo tu) ha appena provato a registrarsi a Miky "
	    "con questo indirizzo email. Hai già un account, quindi non ne "
	    "abbiamo creato uno nuovo.",
	    "Accedi con la tua password attuale. Se non la ricordi, puoi "
	    "reimpostarla dalla pagina di accesso." },
	    "Accedi a Miky",
	    { "Se non eri tu, puoi ignorare questa email: il tuo account non "
	    "ha subito modifiche." } },
	[MAIL_PASSWORD_CHANGED] = { "La tua password è stata cambiata – Miky",
	    { "la password del tuo account Miky è stata appena cambiata. Se "
	    "l'hai cambiata tu, non devi fare nient'altro.",
	    "Se invece non l'hai cambiata tu, reimposta subito la password "
	    "per mettere al sicuro il tuo account." },
	    "Reimposta la password", { NULL } },
	[MAIL_REFERRAL_CREDITS] = { "Un amico si è unito: hai guadagnato "
	    "crediti – Miky",
	    { "buone notizie: un amico che hai invitato su Miky ha appena "
	    "fatto la sua prima chat. La tua ricompensa in crediti è stata "
	    "aggiunta al tuo saldo.",
	    "Se diventerà anche un cliente pagante, guadagnerai anche un "
	    "premio in denaro." },
	    "Vedi i tuoi inviti", { NULL } },
	[MAIL_REFERRAL_CASH] = { "Hai guadagnato un premio in denaro – Miky",
	    { "un amico che hai invitato su Miky ha appena effettuato il suo "
	    "primo pagamento: hai guadagnato un premio in denaro.",
	    "Quando il saldo raggiunge il minimo, puoi chiederne il "
	    "pagamento su PayPal o sul tuo conto bancario." },
	    "Vedi i tuoi premi", { NULL } },
	[MAIL_PAYMENT_FAILED] = { "Il pagamento non è andato a buon fine – "
	    "Miky",
	    { "non siamo riusciti ad addebitare il pagamento del tuo "
	    "abbonamento Miky. Riproveremo nei prossimi giorni.",
	    "Per non interrompere il tuo piano, controlla o aggiorna il tuo "
	    "metodo di pagamento." },
	    "Aggiorna il metodo di pagamento",
	    { "Se hai già risolto, puoi ignorare questa email." } },
	} },
};

#define NLANGS	(sizeof(langs) / sizeof(langs[0]))

static const struct lang *
lang_for(const char *code)
{
	size_t i;

	for (i = 0; code != NULL && i < NLANGS; i++)
		if (strncmp(code, langs[i].code, 2) == 0)
			return &langs[i];
	return &langs[0];
}

/* Appends s with the five characters special to HTML as entities. */
static void
html_put(struct buf *b, const char *s)
{
	static const char special[] = "&<>\"'";
	static const char *const entity[] = {
		"&amp;", "&lt;", "&gt;", "&quot;", "&#39;"
	};
	size_t n;

	while (*s != '\0') {
		n = strcspn(s, special);
		buf_add(b, s, n);
		s += n;
		if (*s != '\0')
			buf_puts(b, entity[strchr(special, *s++) - special]);
	}
}

/* Appends a paragraph wrapped at WRAP code points, and a blank line. */
static void
text_para(struct buf *b, const char *p)
{
	size_t col = 0, w, chars;

	while (*p != '\0') {
		w = strcspn(p, " ");
		chars = utf8_chars(p, w);
		if (col > 0 && col + 1 + chars > WRAP) {
			buf_putc(b, '\n');
			col = 0;
		} else if (col > 0) {
			buf_putc(b, ' ');
			col++;
		}
		buf_add(b, p, w);
		col += chars;
		for (p += w; *p == ' '; p++)
			;
	}
	buf_puts(b, "\n\n");
}

static void
html_para(struct buf *b, const char *p)
{
	buf_puts(b, "<p style=\"margin:0 0 16px;\">");
	html_put(b, p);
	buf_puts(b, "</p>\n");
}

static void
render_text(struct buf *b, const struct lang *l, const struct copy *c,
    const char *name, const char *link)
{
	size_t i;

	buf_printf(b, "%s%s%s,\n\n", l->hello, *name != '\0' ? " " : "",
	    name);
	for (i = 0; i < 3 && c->before[i] != NULL; i++)
		text_para(b, c->before[i]);
	buf_printf(b, "%s:\n%s\n\n", c->action, link);
	for (i = 0; i < 2 && c->after[i] != NULL; i++)
		text_para(b, c->after[i]);
	buf_printf(b, "%s\n", l->signature);
}

static void
render_html(struct buf *b, const struct lang *l, const struct copy *c,
    const char *name, const char *link)
{
	size_t i;

	buf_printf(b, "<!DOCTYPE html>\n<html lang=\"%s\">\n<head>\n"
	    "<meta charset=\"utf-8\">\n<meta name=\"viewport\" "
	    "content=\"width=device-width, initial-scale=1\">\n<title>",
	    l->code);
	html_put(b, c->subject);
	buf_puts(b, "</title>\n</head>\n<body style=\"margin:0;padding:24px;"
	    "background:#f4f4f7;color:#1d1d1f;font-family:-apple-system,"
	    "'Segoe UI',Helvetica,Arial,sans-serif;font-size:16px;"
	    "line-height:1.5;\">\n<div style=\"max-width:560px;margin:0 auto;"
	    "padding:32px;background:#ffffff;border-radius:8px;\">\n"
	    "<p style=\"margin:0 0 16px;\">");
	html_put(b, l->hello);
	if (*name != '\0') {
		buf_putc(b, ' ');
		html_put(b, name);
	}
	buf_puts(b, ",</p>\n");
	for (i = 0; i < 3 && c->before[i] != NULL; i++)
		html_para(b, c->before[i]);
	buf_puts(b, "<p style=\"margin:28px 0;\"><a href=\"");
	html_put(b, link);
	buf_puts(b, "\" style=\"display:inline-block;padding:12px 24px;"
	    "background:#5b4cf0;color:#ffffff;text-decoration:none;"
	    "border-radius:6px;font-weight:600;\">");
	html_put(b, c->action);
	buf_puts(b, "</a></p>\n");
	for (i = 0; i < 2 && c->after[i] != NULL; i++)
		html_para(b, c->after[i]);
	buf_puts(b, "<p style=\"margin:0 0 16px;font-size:13px;"
	    "color:#6e6e73;\">");
	html_put(b, l->fallback);
	buf_puts(b, "<br>\n<a href=\"");
	html_put(b, link);
	buf_puts(b, "\" style=\"color:#5b4cf0;word-break:break-all;\">");
	html_put(b, link);
	buf_puts(b, "</a></p>\n");
	html_para(b, l->signature);
	buf_puts(b, "</div>\n</body>\n</html>\n");
}

int
mail_render(struct mail_content *c, enum mail_template t,
    const char *language, const char *first_name, const char *link)
{
	const struct lang *l = lang_for(language);
	const struct copy *cp = &l->copy[t];

	memset(c, 0, sizeof(*c));
	c->subject = cp->subject;
	if (link == NULL || (strncmp(link, "https://", 8) != 0 &&
	    strncmp(link, "http://", 7) != 0))
		return -1;
	if (first_name == NULL)
		first_name = "";
	render_text(&c->text, l, cp, first_name, link);
	render_html(&c->html, l, cp, first_name, link);
	return 0;
}

void
mail_content_free(struct mail_content *c)
{
	buf_free(&c->text);
	buf_free(&c->html);
}

// E-mail to text for the spam-assassin dataset: the subject and the body a reader sees, no headers.
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { builtinDatasets, datasetFolder } from "../stages/datasets.js"
import {
  decodeCharset,
  decodeHeader,
  htmlToText,
  mailText,
  stripHeaderBlocks,
} from "../stages/ingest-mail.js"

const mail = (s: string): Uint8Array => Buffer.from(s.replaceAll("\n", "\r\n"), "latin1")

describe("headers", () => {
  it("decodes RFC 2047 encoded words, joining adjacent ones", () => {
    expect(
      decodeHeader("=?iso-8859-1?Q?Re:_RE:_=5Bzzzzteana=5D_Sitting_Bull_=FCber_alles_=5BLong=5D?="),
    ).toBe("Re: RE: [zzzzteana] Sitting Bull über alles [Long]")
    expect(decodeHeader("=?utf-8?B?5Lit?= =?utf-8?B?5paH?= ok")).toBe("中文 ok")
    expect(decodeHeader("=?iso-2022-jp?B?GyRCRnxLXDhsGyhC?=")).toBe("日本語")
  })

  it("reads bytes in their charset, guessing UTF-8 then Windows-1252 without one", () => {
    expect(decodeCharset("caf\xe9", "iso-8859-1")).toBe("café")
    expect(decodeCharset("caf\xc3\xa9", undefined)).toBe("café")
    expect(decodeCharset("caf\xe9 \x93q\x94", "x-unknown")).toBe("café “q”")
  })
})

describe("bodies", () => {
  it("drops the headers and keeps the subject and the plain-text body", () => {
    const raw = mail(
      "From spammer@example.com  Thu Aug 22 13:17:22 2002\nReceived: from a (b [1.2.3.4])\n\tby c; Thu, 22 Aug 2002\nFrom: x@example.com\nSubject: Cheap\n  offer\n\nBuy   now.\n\n\n\nReally.\n",
    )
    expect(mailText(raw)).toBe("Cheap offer\n\nBuy now.\n\nReally.")
  })

  it("reads multipart/alternative through its plain part, and skips attachments", () => {
    const raw = mail(
      [
        "Subject: Hi",
        'Content-Type: multipart/mixed; boundary="outer"',
        "",
        "This is a multi-part message in MIME format.",
        "--outer",
        "Content-Type: multipart/alternative; boundary=inner",
        "",
        "--inner",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
        "",
        "Caf=C3=A9 and a soft=",
        " break",
        "--inner",
        "Content-Type: text/html",
        "",
        "<p>HTML copy</p>",
        "--inner--",
        "--outer",
        "Content-Type: application/octet-stream",
        "Content-Disposition: attachment; filename=a.bin",
        "Content-Transfer-Encoding: base64",
        "",
        "AAECAw==",
        "--outer",
        "Content-Type: text/plain",
        "Content-Transfer-Encoding: base64",
        "",
        Buffer.from("第二部分").toString("base64"),
        "--outer--",
      ].join("\n"),
    )
    expect(mailText(raw)).toBe("Hi\n\nCafé and a soft break\n\n第二部分")
  })

  it("reduces HTML to its text", () => {
    expect(
      htmlToText(
        "<html><head><title>t</title><style>p{}</style></head><body><!-- c --><p>Save&nbsp;70%</p>Now&#33;<br>A &amp; B &#x4e2d;</body></html>",
      ).trim(),
    ).toBe("Save 70%\nNow!\nA & B 中")
  })

  it("drops header blocks quoted or forwarded in a body", () => {
    expect(
      stripHeaderBlocks(
        [
          "See below.",
          "-----Original Message-----",
          "From: Ann <ann@example.com>",
          "Sent: Monday",
          "To: Bob",
          "Subject: plans",
          "",
          "> Received: from relay",
          "",
          "Message-ID:",
          "From: the heart",
          "",
          "From: the heart",
          "The end.",
        ].join("\n"),
      ),
    ).toBe(["See below.", "-----Original Message-----", "", "", "", "From: the heart", "The end."].join("\n"))
  })
})

describe("the SpamAssassin corpus", () => {
  const folder = datasetFolder(builtinDatasets.get("spam-assassin")!)!
  const read = (file: string) => mailText(readFileSync(join(folder, file)))

  it("gives a spam message's subject and HTML body as text", () => {
    const start =
      "Life Insurance - Why Pay More?\n\nSave up to 70% on Life Insurance.\n\nWhy Spend More Than You Have To?\n\nLife Quote Savings"
    expect(read("spam-1/00001.7848dde101aa985090474a91ec93fcf0.txt").slice(0, start.length)).toBe(start)
  })

  it("gives a ham reply without the headers it quotes", () => {
    const text = read("easy-ham-1/00001.7c53336b37003a9286aba55d2945844c.txt")
    expect(text.slice(0, 57)).toBe("Re: New Sequences Window\n\n| I can't reproduce this error.")
    expect(text).not.toMatch(/^(Received|From|Date|Message-ID):/m)
  })
})

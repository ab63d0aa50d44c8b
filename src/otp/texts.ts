import { pick, type Locale } from "./locale";

/** The bot's own words around codes (Meta's authentication template text itself is fixed by Meta). */
type Texts = Record<Locale, string>;

export const NOT_ME_BUTTON_ID = "otp_not_me";
export const NEW_CODE_BUTTON_ID = "otp_new_code";

const warning: Texts = {
  en_US: "🔐 Never share this code with anyone, not even with us: we will never ask you for it. If you did not request it, tap below.",
  es: "🔐 No compartas este código con nadie, ni siquiera con nosotros: nunca te lo pediremos. Si no lo solicitaste, toca abajo.",
  pt_BR: "🔐 Nunca compartilhe este código com ninguém, nem mesmo conosco: nunca vamos pedi-lo. Se você não o solicitou, toque abaixo.",
};
const notMeTitle: Texts = { en_US: "I didn't request it", es: "No lo solicité", pt_BR: "Não solicitei" };
const newCodeTitle: Texts = { en_US: "Send a new code", es: "Enviar otro código", pt_BR: "Enviar novo código" };

export const otpTexts = {
  warning: (l: string) => pick(warning, l),
  notMeTitle: (l: string) => pick(notMeTitle, l),
  newCodeTitle: (l: string) => pick(newCodeTitle, l),
  approved: (l: string) =>
    pick({ en_US: "✅ Code confirmed. You're verified.", es: "✅ Código confirmado. Verificación completada.", pt_BR: "✅ Código confirmado. Verificação concluída." }, l),
  wrong: (l: string, left: number) =>
    pick(
      {
        en_US: `❌ That code is not right. ${left} ${left === 1 ? "try" : "tries"} left.`,
        es: `❌ Ese código no es correcto. Te quedan ${left} ${left === 1 ? "intento" : "intentos"}.`,
        pt_BR: `❌ Esse código não está certo. ${left === 1 ? "Resta 1 tentativa" : `Restam ${left} tentativas`}.`,
      },
      l,
    ),
  locked: (l: string) =>
    pick(
      {
        en_US: "🔒 Too many wrong codes. This code no longer works; request a new one where you started.",
        es: "🔒 Demasiados códigos incorrectos. Este código ya no sirve; solicita uno nuevo donde empezaste.",
        pt_BR: "🔒 Códigos errados demais. Este código não vale mais; peça um novo onde você começou.",
      },
      l,
    ),
  expired: (l: string) =>
    pick(
      {
        en_US: "⌛ That code has expired. Tap below for a new one.",
        es: "⌛ Ese código ha caducado. Toca abajo para recibir uno nuevo.",
        pt_BR: "⌛ Esse código expirou. Toque abaixo para receber um novo.",
      },
      l,
    ),
  newCodeRefused: (l: string, seconds?: number) =>
    pick(
      {
        en_US: seconds ? `Please wait ${seconds} s before asking for another code.` : "A new code cannot be sent right now.",
        es: seconds ? `Espera ${seconds} s antes de pedir otro código.` : "No se puede enviar un código nuevo ahora.",
        pt_BR: seconds ? `Aguarde ${seconds} s antes de pedir outro código.` : "Não é possível enviar um novo código agora.",
      },
      l,
    ),
  pinAsk: (l: string) =>
    pick(
      {
        en_US: "✅ Code confirmed. Two-step verification is on: now type your 6-digit PIN.",
        es: "✅ Código confirmado. La verificación en dos pasos está activada: ahora escribe tu PIN de 6 dígitos.",
        pt_BR: "✅ Código confirmado. A verificação em duas etapas está ativada: agora digite seu PIN de 6 dígitos.",
      },
      l,
    ),
  pinFormat: (l: string) => pick({ en_US: "A PIN is 6 digits. Type your PIN.", es: "Un PIN tiene 6 dígitos. Escribe tu PIN.", pt_BR: "Um PIN tem 6 dígitos. Digite seu PIN." }, l),
  pinWrong: (l: string, left: number) =>
    pick(
      {
        en_US: `❌ Wrong PIN. ${left} ${left === 1 ? "try" : "tries"} left.`,
        es: `❌ PIN incorrecto. Te ${left === 1 ? "queda 1 intento" : `quedan ${left} intentos`}.`,
        pt_BR: `❌ PIN incorreto. ${left === 1 ? "Resta 1 tentativa" : `Restam ${left} tentativas`}.`,
      },
      l,
    ),
  pinLocked: (l: string) =>
    pick(
      {
        en_US: "🔒 Too many wrong PINs: the PIN is locked for a while and this code no longer works. If you've forgotten your PIN, write *forgot pin* later.",
        es: "🔒 Demasiados PIN incorrectos: el PIN queda bloqueado un rato y este código ya no sirve. Si olvidaste tu PIN, escribe *olvidé mi pin* más tarde.",
        pt_BR: "🔒 PINs errados demais: o PIN ficou bloqueado por um tempo e este código não vale mais. Se esqueceu seu PIN, escreva *esqueci meu pin* mais tarde.",
      },
      l,
    ),
  notMeNothingPending: (l: string) =>
    pick(
      {
        en_US:
          "There's no recent code or login notice for your number, so nothing was blocked.\n\n" +
          "If you think someone got into your account, write *recover*: we'll check it's you and sign out every other device. " +
          "Never share a code or PIN: we will never ask for one.",
        es:
          "No hay ningún código ni aviso de inicio de sesión reciente para tu número, así que no se bloqueó nada.\n\n" +
          "Si crees que alguien entró en tu cuenta, escribe *recuperar*: comprobaremos que eres tú y cerraremos la sesión en los demás dispositivos. " +
          "No compartas nunca un código ni tu PIN: nunca te los pediremos.",
        pt_BR:
          "Não há nenhum código nem aviso de acesso recente para o seu número, então nada foi bloqueado.\n\n" +
          "Se você acha que alguém entrou na sua conta, escreva *recuperar*: vamos confirmar que é você e encerrar as sessões nos outros aparelhos. " +
          "Nunca compartilhe um código ou PIN: nunca vamos pedir.",
      },
      l,
    ),
  reported: (l: string) =>
    pick(
      {
        en_US:
          "Thank you for telling us. We cancelled the code and blocked new codes to your number for a while.\n\n" +
          "Someone may be trying to get into your account:\n" +
          "• Never share a code or PIN: we will never ask for one, by chat, call or email.\n" +
          "• Beware of messages from \"support\" or friends asking for a code: that is phishing.\n" +
          "• Ask your mobile carrier for a SIM/port-out PIN, so nobody can move your number to another SIM.\n" +
          "• Set a voicemail password: codes by voice call can land in voicemail.\n" +
          "• Turn on two-step verification, and log out of devices you don't recognise.",
        es:
          "Gracias por avisarnos. Cancelamos el código y bloqueamos nuevos códigos a tu número por un tiempo.\n\n" +
          "Alguien podría estar intentando entrar en tu cuenta:\n" +
          "• Nunca compartas un código o PIN: nunca te lo pediremos, ni por chat, llamada o correo.\n" +
          "• Desconfía de mensajes de \"soporte\" o de amigos que te pidan un código: es phishing.\n" +
          "• Pide a tu operador un PIN para la SIM y la portabilidad, para que nadie pase tu número a otra SIM.\n" +
          "• Pon contraseña al buzón de voz: los códigos por llamada pueden acabar ahí.\n" +
          "• Activa la verificación en dos pasos y cierra sesión en dispositivos que no reconozcas.",
        pt_BR:
          "Obrigado por avisar. Cancelamos o código e bloqueamos novos códigos para o seu número por um tempo.\n\n" +
          "Alguém pode estar tentando entrar na sua conta:\n" +
          "• Nunca compartilhe um código ou PIN: nunca vamos pedi-lo, por chat, ligação ou e-mail.\n" +
          "• Desconfie de mensagens de \"suporte\" ou de amigos pedindo um código: é golpe (phishing).\n" +
          "• Peça à sua operadora um PIN do chip e da portabilidade, para ninguém transferir seu número.\n" +
          "• Coloque senha no correio de voz: códigos por ligação podem cair lá.\n" +
          "• Ative a verificação em duas etapas e saia de aparelhos que você não reconhece.",
      },
      l,
    ),
};

/** Words a customer may type to say a code was not theirs (besides Meta's button and our quick reply). */
export const NOT_ME_KEYWORDS = [
  "i didn't request this", "i didnt request this", "i did not request this", "i didn't request it", "not me",
  "no lo solicité", "no lo solicite", "no fui yo", "não solicitei", "nao solicitei", "não fui eu", "nao fui eu",
];

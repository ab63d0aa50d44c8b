import { z } from "zod";

/**
 * What the sandbox accepts on `POST /{version}/{phone-number-id}/messages`, per Meta's send-messages reference and
 * the OpenAPI file (../shared/openapi, `Message` oneOf). Shapes are checked here; Meta's value limits (lengths,
 * counts) are checked in validate-message.ts so each breaks with Meta's own code.
 */
const parameter = z.looseObject({ type: z.string(), text: z.string().optional(), parameter_name: z.string().optional() });

export const templateSendSchema = z.looseObject({
  name: z.string().min(1),
  language: z.looseObject({ code: z.string().min(1), policy: z.string().optional() }),
  components: z
    .array(
      z.looseObject({
        type: z.string(),
        sub_type: z.string().optional(),
        index: z.union([z.string(), z.number()]).optional(),
        parameters: z.array(parameter).optional(),
      }),
    )
    .optional(),
});
export type TemplateSend = z.infer<typeof templateSendSchema>;

const replyButton = z.looseObject({ type: z.string(), reply: z.looseObject({ id: z.string(), title: z.string() }) });
const listRow = z.looseObject({ id: z.string(), title: z.string(), description: z.string().optional() });

export const interactiveSchema = z.looseObject({
  type: z.string(),
  header: z.looseObject({ type: z.string(), text: z.string().optional() }).optional(),
  body: z.looseObject({ text: z.string() }).optional(),
  footer: z.looseObject({ text: z.string() }).optional(),
  action: z.looseObject({
    button: z.string().optional(),
    buttons: z.array(replyButton).optional(),
    sections: z.array(z.looseObject({ title: z.string().optional(), rows: z.array(listRow).optional() })).optional(),
  }),
});
export type InteractiveSend = z.infer<typeof interactiveSchema>;

export const textSchema = z.looseObject({ body: z.string(), preview_url: z.boolean().optional() });

export const mediaSchema = z.looseObject({ id: z.string().optional(), link: z.string().optional(), caption: z.string().optional(), filename: z.string().optional() });

export const sendSchema = z.looseObject({
  messaging_product: z.literal("whatsapp"),
  recipient_type: z.enum(["individual", "group"]).optional(),
  to: z.string().min(1).optional(),
  recipient: z.string().min(1).optional(),
  /** Meta defaults a missing type to text */
  type: z.string().default("text"),
  context: z.looseObject({ message_id: z.string() }).optional(),
  biz_opaque_callback_data: z.string().max(512).optional(),
});
export type SendBody = z.infer<typeof sendSchema> & Record<string, unknown>;

export const markReadSchema = z.looseObject({
  messaging_product: z.literal("whatsapp"),
  status: z.literal("read"),
  message_id: z.string().min(1),
  typing_indicator: z.looseObject({ type: z.string() }).optional(),
});
export type MarkReadBody = z.infer<typeof markReadSchema>;
